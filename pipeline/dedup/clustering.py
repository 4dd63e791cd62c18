"""Cases from scored pairs: average linkage over P(same matter), with the analysts' must-link
and cannot-link pairs.

Connected components chain: A–B and B–C put A and C in one case however unlike they are.
Average linkage joins two groups only while the mean of the probabilities over *every* pair
between them is at least a threshold, a pair not scored counting 0: a letter joins a case
when it matches the case's letters on average, not when it matches one of them.
"""
import numpy as np
import scipy.sparse as sp
from scipy.cluster.hierarchy import DisjointSet, fcluster, linkage
from scipy.sparse.csgraph import connected_components

APART = 1e9      # the distance of a cannot-link pair: no mean that holds it reaches any threshold
DENSE_MAX = 2000  # components up to this many items are clustered by scipy on a full distance matrix
SPLIT_STEP = 50   # thousandths: how much heavier the pairs are that cut a larger component


def link_components(n, a, b, chunk=2_000_000):
    """The connected component of each of ``n`` items over pairs ``a[i]``–``b[i]`` (numbered
    in the order of their first item, as scipy numbers them), and each component's size.

    The pairs are joined ``chunk`` at a time, each chunk over the components of those before
    it: scipy's graph of all of them at once (float64 weights, and its transpose) would take
    about 40 bytes a pair, half a gigabyte for a million letters' 13 million scored pairs."""
    count, component = n, np.arange(n)
    for start in range(0, max(len(a), 1), chunk):
        ends = component[a[start:start + chunk]], component[b[start:start + chunk]]
        count, merged = connected_components(sp.coo_matrix((np.ones(len(ends[0]), dtype=np.int8), ends),
                                                           shape=(count, count)), directed=False)
        component = merged[component]
    return component, np.bincount(component, minlength=1)


def average_linkage(n, a, b, weight, threshold, *, rank=None, must=None, cannot=None, dense_max=DENSE_MAX,
                    reach=None):
    """Group items ``0..n-1`` scored by pairs (``a[i]``, ``b[i]``) of ``weight[i]`` (0-1, each
    pair listed once).

    Two groups merge, again and again, while the mean weight over all pairs between them (a
    pair not listed weighs 0) is at least ``threshold``; a ``cannot`` pair (a (k, 2) int array)
    never ends in one group. This is average linkage (UPGMA) cut at ``1 - threshold`` on the
    distance ``1 - weight``. Then the groups holding the two items of a ``must`` pair are
    joined (two letters decided one matter make their cases one), unless that would put a
    ``cannot`` pair together. Items are taken in ``rank``
    order (default: position), so the groups depend on the pairs and ranks, not on the order
    the pairs are listed in.

    A merge needs a mean of at least ``threshold``, so at least one pair that heavy between the
    two groups: no group reaches across the components of such pairs, and each is clustered
    alone, by scipy on its full distance matrix. A component of more than ``dense_max`` items
    is first cut into the components of its pairs ``SPLIT_STEP`` heavier, again until each
    part fits (its cases may then be split more than the exact method would split them).

    ``reach`` (a boolean mask): only the groups of these items are wanted. The parts clustered
    are then those holding one of them (each part is clustered alone, so its groups are those
    clustering every part gives); the items of the other parts get -1. The items of ``must``
    and ``cannot`` pairs must be in ``reach`` (a join reaches across parts).

    Returns an int64 array: the group of each item (numbered from 0, in no set order).
    """
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    # weights in whole thousandths: sums are exact whatever order the pairs come in
    weight, threshold = np.round(np.asarray(weight, dtype=float) * 1000), threshold * 1000
    rank = np.arange(n) if rank is None else np.asarray(rank)
    must = np.zeros((0, 2), dtype=np.int64) if must is None else np.asarray(must, dtype=np.int64).reshape(-1, 2)
    cannot = np.zeros((0, 2), dtype=np.int64) if cannot is None else np.asarray(cannot, dtype=np.int64).reshape(-1, 2)
    reach = np.ones(n, dtype=bool) if reach is None else np.asarray(reach, dtype=bool)
    labels, reached = _linkage(n, a, b, weight, cannot, threshold, rank, dense_max, reach)
    labels = _join(np.unique(labels, return_inverse=True)[1].astype(np.int64), must, cannot, rank)
    return np.where(reached, labels, -1)


def _linkage(n, a, b, weight, apart, threshold, rank, dense_max, reach):
    """Average linkage of items ``0..n-1`` (weights and ``threshold`` in thousandths), within
    their parts (:func:`_parts`), for the parts holding an item of ``reach``. Returns, for
    each item, an item of its group (the first in ``rank`` order), and whether it was clustered."""
    part = _parts(n, a, b, weight, threshold, dense_max)
    kept = part[a] == part[b]
    a, b, weight = a[kept], b[kept], weight[kept]
    inside = apart[part[apart[:, 0]] == part[apart[:, 1]]]  # the others are apart already
    size = np.bincount(part, minlength=1)
    labels = np.arange(n, dtype=np.int64)
    seeded = np.zeros(len(size), dtype=bool)
    seeded[part[reach]] = True
    reached = seeded[part]
    # parts of two items and no cannot pair (most of them): their one pair decides
    hard = (size > 2) | np.isin(np.arange(len(size)), part[inside.ravel()])
    pair = ~hard[part[a]] & seeded[part[a]] & (weight >= threshold)
    labels[a[pair]] = labels[b[pair]] = np.where(rank[a[pair]] <= rank[b[pair]], a[pair], b[pair])
    hard &= seeded
    # the pairs and cannot pairs of each hard part, as slices of arrays sorted by part
    chosen = np.flatnonzero(hard[part[a]])
    chosen = chosen[np.argsort(part[a[chosen]], kind="stable")]
    a, b, weight = a[chosen], b[chosen], weight[chosen]
    inside = inside[np.argsort(part[inside[:, 0]], kind="stable")]
    order = np.lexsort((rank, part))
    groups = np.arange(len(size) + 1)
    item_bounds = np.searchsorted(part[order], groups)
    pair_bounds, apart_bounds = np.searchsorted(part[a], groups), np.searchsorted(part[inside[:, 0]], groups)
    position = np.zeros(n, dtype=np.int64)
    for group in np.flatnonzero(hard).tolist():
        items = order[item_bounds[group]:item_bounds[group + 1]]
        position[items] = np.arange(len(items))
        pairs, held = slice(pair_bounds[group], pair_bounds[group + 1]), inside[apart_bounds[group]:apart_bounds[group + 1]]
        labels[items] = items[_dense(len(items), position[a[pairs]], position[b[pairs]], weight[pairs],
                                     position[held], threshold)]
    return labels, reached


def _parts(n, a, b, weight, threshold, dense_max):
    """The part of each of items ``0..n-1`` clustered alone: its component of the pairs of at
    least ``threshold`` (thousandths) if that has at most ``dense_max`` items, else its
    component of the pairs ``SPLIT_STEP`` heavier, and so on (a merge needs a pair at least
    as heavy as the threshold, so no group reaches across a component). Components are
    nested, so all levels are found from the heaviest down, each contracting the one above
    by its own pairs only: every pair is looked at once, not once per level.

    Returns an int64 array: the part of each item, numbered from 0."""
    step = np.where(weight >= threshold, (weight - threshold) // SPLIT_STEP, -1).astype(np.int64)
    by_step = np.argsort(-step, kind="stable")
    bounds = np.searchsorted(-step[by_step], -np.arange(int(step.max(initial=-1)), -2, -1))  # each step's pairs
    component = np.arange(n, dtype=np.int64)  # above the heaviest pair: every item alone
    part = component.copy()
    parts = n
    for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist()):  # one level lighter each time
        pairs = by_step[start:end]
        merged, _ = link_components(int(component.max(initial=-1)) + 1, component[a[pairs]], component[b[pairs]])
        component = merged[component].astype(np.int64)
        size = np.bincount(component, minlength=1)
        fits = size[component] <= dense_max  # the lightest level that fits wins: sizes only grow
        part[fits] = parts + component[fits]
        parts += len(size)
    return np.unique(part, return_inverse=True)[1].astype(np.int64)


def _dense(m, a, b, weight, apart, threshold):
    """Average linkage of one component of ``m`` items (in rank order) by scipy on its full
    distance matrix; pairs and cannot pairs given as item positions. Returns, for each item,
    the position of its group's first item."""
    distance = np.ones((m, m))
    distance[a, b] = distance[b, a] = 1 - weight / 1000
    distance[apart[:, 0], apart[:, 1]] = distance[apart[:, 1], apart[:, 0]] = APART
    np.fill_diagonal(distance, 0)
    cut = 1 - threshold / 1000 + 1e-9
    groups = fcluster(linkage(distance[np.triu_indices(m, 1)], method="average"), t=cut, criterion="distance")
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    return first[inverse]


def _join(labels, must, cannot, rank):
    """``labels`` with the groups of each ``must`` pair joined (earliest pairs first), a join
    that would put a ``cannot`` pair in one group skipped."""
    if not len(must):
        return labels
    # only the groups of decided items take part: a million groups need not be Python objects
    involved = np.unique(labels[np.concatenate((must.ravel(), cannot.ravel()))])
    groups, apart = DisjointSet(involved.tolist()), {}
    for x, y in cannot.tolist():
        apart.setdefault(labels[x], set()).add(labels[y])
        apart.setdefault(labels[y], set()).add(labels[x])
    order = np.lexsort((np.maximum(rank[must[:, 0]], rank[must[:, 1]]), np.minimum(rank[must[:, 0]], rank[must[:, 1]])))
    for x, y in must[order].tolist():
        gx, gy = groups[labels[x]], groups[labels[y]]
        if gx == gy or any(groups[z] == gy for member in groups.subset(gx) for z in apart.get(member, ())):
            continue
        groups.merge(gx, gy)
    joined = np.arange(int(labels.max()) + 1)
    joined[involved] = [groups[label] for label in involved.tolist()]
    return np.unique(joined[labels], return_inverse=True)[1].astype(np.int64)
