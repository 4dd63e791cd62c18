"""Cases by average linkage over scored links (pipeline.dedup.clustering)."""
import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage

from pipeline.dedup.clustering import average_linkage


def together(labels):
    labels = np.asarray(labels)
    return labels[:, None] == labels[None, :]


def random_graph(rng, n):
    a, b = rng.integers(0, n, 3 * n), rng.integers(0, n, 3 * n)
    keep = a != b
    code = np.unique(np.minimum(a, b)[keep] * n + np.maximum(a, b)[keep])
    return code // n, code % n, np.round(rng.random(len(code)), 3)


@pytest.mark.parametrize("seed", range(40))
def test_same_groups_as_scipy_average_linkage(seed):
    """Unlisted pairs weigh 0: scipy's UPGMA on the full matrix of 1 - weight, cut at 1 - t."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 30))
    a, b, weight = random_graph(rng, n)
    threshold = float(rng.choice([0.2, 0.35, 0.5]))
    distance = np.ones((n, n))
    distance[a, b] = distance[b, a] = 1 - weight
    np.fill_diagonal(distance, 0)
    expected = fcluster(linkage(distance[np.triu_indices(n, 1)], "average"), t=1 - threshold + 1e-9,
                        criterion="distance")
    assert (together(average_linkage(n, a, b, weight, threshold)) == together(expected)).all()


def test_a_chain_is_not_a_case():
    # A–B and B–C strong, A–C never linked: C joins {A, B} only if its mean over both is enough
    a, b, weight = np.array([0, 1]), np.array([1, 2]), np.array([0.9, 0.9])
    assert together(average_linkage(3, a, b, weight, 0.4)).all()             # mean 0.45
    assert average_linkage(3, a, b, weight, 0.5).tolist().count(0) in (1, 2)  # mean 0.45 < 0.5: split
    # a long chain of strong links falls apart into its neighbourhoods
    n = 12
    labels = average_linkage(n, np.arange(n - 1), np.arange(1, n), np.full(n - 1, 0.95), 0.3)
    assert np.bincount(labels).max() <= 3


def test_decisions_hold_through_chains():
    a, b, weight = np.array([0, 1]), np.array([1, 2]), np.array([0.9, 0.9])
    labels = average_linkage(3, a, b, weight, 0.3, cannot=[[0, 2]])
    assert labels[0] != labels[2]
    # must pairs join letters no link joins; a must pair contradicting a cannot pair is left out
    labels = average_linkage(4, [0], [1], [0.9], 0.3, must=[[2, 3], [1, 2]], cannot=[[0, 3]])
    assert labels[1] == labels[2] == labels[3] != labels[0]
    labels = average_linkage(3, [], [], [], 0.3, must=[[0, 1], [1, 2]], cannot=[[0, 2]])
    assert labels[0] == labels[1] != labels[2]


def test_result_does_not_depend_on_listing_order():
    rng = np.random.default_rng(7)
    n = 40
    a, b, weight = random_graph(rng, n)
    weight[:5] = 0.5  # ties
    rank = rng.permutation(n)
    base = together(average_linkage(n, a, b, weight, 0.3, rank=rank, cannot=[[0, 1]]))
    order = rng.permutation(len(a))
    swapped = average_linkage(n, b[order], a[order], weight[order], 0.3, rank=rank, cannot=[[1, 0]])
    assert (together(swapped) == base).all()
    # items renumbered (another night's index order), the same ranks follow them
    new = rng.permutation(n)
    renamed = average_linkage(n, new[a], new[b], weight, 0.3, rank=rank[np.argsort(new)],
                              cannot=[[new[0], new[1]]])[new]
    assert (together(renamed) == base).all()
