"""Cases from scored links: average linkage over the links' probabilities, with the analysts'
must-link and cannot-link pairs.

Connected components chain: A–B and B–C put A and C in one case however unlike they are.
Average linkage joins two groups only while the mean of the probabilities over *every* pair
between them is at least a threshold, a pair without a link counting 0: a letter joins a
case when it matches the case's letters on average, not when it matches one of them.
"""
import heapq

import numpy as np
import scipy.sparse as sp
from scipy.cluster.hierarchy import DisjointSet
from scipy.sparse.csgraph import connected_components

APART = -np.inf  # the weight of a cannot-link pair: no mean that holds it reaches any threshold


def average_linkage(n, a, b, weight, threshold, *, rank=None, must=None, cannot=None):
    """Group items ``0..n-1`` linked by pairs (``a[i]``, ``b[i]``) of ``weight[i]`` (0-1).

    Items joined by a ``must`` pair (a (k, 2) int array) start in one group, unless that
    would put a ``cannot`` pair in one group (the ``must`` pair is then left out). Then the
    two groups with the highest mean weight over all pairs between them (a pair not listed
    weighs 0, a ``cannot`` pair ``APART``) are merged, again and again, while that mean is
    at least ``threshold``. This is average linkage (UPGMA) cut at ``1 - threshold`` on the
    distance ``1 - weight``, computed over the links only. Ties go to the groups whose
    earliest items by ``rank`` (default: position) come first, so the result depends on
    the pairs and ranks, not on the order they are listed in.

    Returns an int64 array: the group of each item (numbered from 0, in no set order).
    """
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    # weights in whole thousandths: sums are exact whatever order the links come in
    weight, threshold = np.round(np.asarray(weight, dtype=float) * 1000), threshold * 1000
    rank = np.arange(n) if rank is None else np.asarray(rank)
    must = np.zeros((0, 2), dtype=np.int64) if must is None else np.asarray(must, dtype=np.int64).reshape(-1, 2)
    cannot = np.zeros((0, 2), dtype=np.int64) if cannot is None else np.asarray(cannot, dtype=np.int64).reshape(-1, 2)
    graph = sp.coo_matrix((np.ones(len(a) + len(must), dtype=np.int8),
                           (np.concatenate((a, must[:, 0])), np.concatenate((b, must[:, 1])))), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    size = np.bincount(component, minlength=component.max(initial=-1) + 1)
    # components of two items and no cannot pair (most of them): their one link or must pair decides
    hard = (size > 2) | np.isin(np.arange(len(size)), component[cannot.ravel()])
    labels = np.arange(n, dtype=np.int64)
    easy_link = ~hard[component[a]] & (weight >= threshold)
    easy_must = ~hard[component[must[:, 0]]]
    for x, y in ((a[easy_link], b[easy_link]), (must[easy_must, 0], must[easy_must, 1])):
        labels[x] = labels[y] = np.minimum(x, y)
    members = {}
    for item in np.flatnonzero(hard[component]).tolist():
        members.setdefault(component[item], []).append(item)
    if members:
        chosen = hard[component[a]]
        edges = _by_component(component, a[chosen], b[chosen], weight[chosen])
        apart = _by_component(component, cannot[:, 0], cannot[:, 1], np.full(len(cannot), APART))
        joined = _by_component(component, must[:, 0], must[:, 1], np.zeros(len(must)))
        for group, items in members.items():
            found = _merge(items, edges.get(group, []), joined.get(group, []), apart.get(group, []), rank, threshold)
            labels[items] = [found[item] for item in items]
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)


def _by_component(component, a, b, weight):
    """{component: [(a, b, weight), ...]} of pairs."""
    out = {}
    for x, y, w in zip(a.tolist(), b.tolist(), weight.tolist()):
        out.setdefault(component[x], []).append((x, y, w))
    return out


def _merge(items, edges, must, cannot, rank, threshold):
    """Average linkage of one component (see ``average_linkage``): {item: group item}."""
    groups = DisjointSet(items)
    kept_apart = {}
    for x, y, _ in cannot:
        kept_apart.setdefault(x, set()).add(y)
        kept_apart.setdefault(y, set()).add(x)
    for x, y, _ in sorted(must, key=lambda pair: (min(rank[pair[0]], rank[pair[1]]),
                                                  max(rank[pair[0]], rank[pair[1]]))):
        gx, gy = groups[x], groups[y]
        if gx != gy and not any(groups[z] == gy for member in groups.subset(gx) for z in kept_apart.get(member, ())):
            groups.merge(gx, gy)
    # sums of weights between the starting groups; a cannot pair makes its groups' sum APART
    size, first, sums = {}, {}, {}
    for item in items:
        root = groups[item]
        size[root] = size.get(root, 0) + 1
        first[root] = min(first.get(root, np.inf), rank[item])
    for x, y, w in list(edges) + list(cannot):
        gx, gy = groups[x], groups[y]
        if gx != gy:
            sums.setdefault(gx, {})[gy] = sums.setdefault(gx, {}).get(gy, 0.0) + w
            sums.setdefault(gy, {})[gx] = sums[gx][gy]
    heap = []

    def push(g, h):
        mean = sums[g][h] / (size[g] * size[h])
        if mean >= threshold:
            heapq.heappush(heap, (-mean, min(first[g], first[h]), max(first[g], first[h]), g, h))

    for g, row in sums.items():
        for h in row:
            if first[g] < first[h]:
                push(g, h)
    while heap:
        negative, _, _, g, h = heapq.heappop(heap)
        if g not in size or h not in size or h not in sums.get(g, {}) \
                or sums[g][h] / (size[g] * size[h]) != -negative:
            continue  # a stale entry: one of the groups has changed since it was pushed
        merged, gone = (g, h) if first[g] < first[h] else (h, g)
        size[merged] += size.pop(gone)
        row = sums.pop(gone)
        row.pop(merged, None)
        sums[merged].pop(gone, None)
        for other, value in row.items():
            sums[other].pop(gone)
            total = sums[merged].get(other, 0.0) + value
            sums[merged][other] = sums[other][merged] = total
        for other in sums[merged]:
            push(merged, other)
        groups.merge(merged, gone)
    return {item: groups[item] for item in items}
