"""Cases by average linkage over scored links (pipeline.dedup.clustering)."""
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse.csgraph import connected_components

from pipeline.dedup.clustering import average_linkage, link_components


def together(labels):
    labels = np.asarray(labels)
    return labels[:, None] == labels[None, :]


def random_graph(rng, n):
    a, b = rng.integers(0, n, 3 * n), rng.integers(0, n, 3 * n)
    keep = a != b
    code = np.unique(np.minimum(a, b)[keep] * n + np.maximum(a, b)[keep])
    return code // n, code % n, np.round(rng.random(len(code)), 3)


@pytest.mark.parametrize("seed", range(20))
def test_components_joined_chunk_by_chunk_are_scipys_of_all_pairs_at_once(seed):
    """The same numbering too; a path crosses every chunk."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    a, b, _ = random_graph(rng, n)
    path = rng.permutation(n)
    a, b = np.concatenate((a, path[:-1])), np.concatenate((b, path[1:] if seed % 2 else path[:-1]))
    order = rng.permutation(len(a))
    a, b = a[order], b[order]
    _, expected = connected_components(sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    for chunk in (1, 5, 64, len(a) + 1):
        component, size = link_components(n, a, b, chunk=chunk)
        assert component.tolist() == expected.tolist()
        assert size.tolist() == np.bincount(expected).tolist()
    assert link_components(0, a[:0], b[:0])[0].tolist() == []


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
    # must pairs join the groups of letters no link joins; a join that would put a cannot
    # pair in one group is left out (the earlier must pair first)
    labels = average_linkage(4, [0], [1], [0.9], 0.3, must=[[2, 3], [1, 2]], cannot=[[0, 3]])
    assert labels[0] == labels[1] == labels[2] != labels[3]
    labels = average_linkage(3, [], [], [], 0.3, must=[[0, 1], [1, 2]], cannot=[[0, 2]])
    assert labels[0] == labels[1] != labels[2]
    # a cannot pair between letters of two groups changes nothing; one through a chain splits it
    assert average_linkage(5, [0, 1], [1, 2], [0.9, 0.9], 0.35, cannot=[[0, 4]]).tolist().count(0) == 3


def test_a_same_decision_joins_two_cases_whole():
    a, b = zip(*[(base + i, base + j) for base in (0, 5) for i in range(5) for j in range(i + 1, 5)])
    labels = average_linkage(10, a, b, [0.6] * len(a), 0.35, must=[[0, 5]])
    assert len(set(labels.tolist())) == 1


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


def test_copies_beyond_the_scored_size_stay_one_case():
    """A form letter sent 30 times, over a case size whose pairs are all scored (here 10):
    linked to the earliest copy only, its copies are still one case (one text, one letter)."""
    import pandas as pd

    from pipeline import schema
    from pipeline.dedup.cases import assign_cases
    ids = [f"L{i:03d}" for i in range(31)]
    letters = pd.DataFrame({schema.LETTER_ID: ids, schema.RECEIVED_AT: pd.date_range("2024-01-01", periods=31)})
    links = pd.DataFrame({schema.LETTER_A: ids[0], schema.LETTER_B: ids[1:30], schema.RELATION: schema.EXACT_COPY,
                          schema.LINK_SCORE: 1.0})
    links = pd.concat([links, pd.DataFrame({schema.LETTER_A: [ids[29]], schema.LETTER_B: [ids[30]],
                                            schema.RELATION: [schema.SAME_MATTER], schema.LINK_SCORE: [0.3]})])
    cases = assign_cases(letters, links, None, 0.35, max_letters=10)
    assert cases[schema.CASE_ID].iloc[:30].nunique() == 1 and cases[schema.CASE_ID].iloc[30] == ids[30]
    assert (cases[schema.RELATION].iloc[1:30] == schema.EXACT_COPY).all()


def test_one_letter_sent_to_several_bodies_is_one_case_whatever_its_p():
    """一信多投: a near-same text sent to four bodies is one letter, as exact copies are, even
    when the match model gives its pairs a low P (an enquiry naming nothing specific); a
    near-same text sent again to one body (resend) with such a P is left to the clustering."""
    import pandas as pd

    from pipeline import schema
    from pipeline.dedup.cases import assign_cases
    ids = [f"L{i}" for i in range(6)]
    letters = pd.DataFrame({schema.LETTER_ID: ids, schema.RECEIVED_AT: pd.date_range("2024-01-01", periods=6)})
    links = pd.DataFrame({schema.LETTER_A: ["L0", "L0", "L0", "L4"], schema.LETTER_B: ["L1", "L2", "L3", "L5"],
                          schema.RELATION: [schema.MULTI_ADDRESSED] * 3 + [schema.RESEND],
                          schema.LINK_SCORE: [0.1, 0.2, 0.15, 0.1]})
    cases = assign_cases(letters, links, None, 0.3)[schema.CASE_ID].set_axis(ids)
    assert cases[["L0", "L1", "L2", "L3"]].nunique() == 1 and cases["L4"] != cases["L5"]


def cliques(sizes, inner, bridge):
    """Cliques of ``sizes`` items, pairs ``inner`` heavy, each joined to the next by one ``bridge`` pair."""
    a, b, weight, start = [], [], [], 0
    for size in sizes:
        for i in range(size):
            for j in range(i + 1, size):
                a.append(start + i), b.append(start + j), weight.append(inner)
        if start:
            a.append(start - 1), b.append(start), weight.append(bridge)
        start += size
    return start, np.array(a), np.array(b), np.array(weight)


def test_a_component_too_large_is_cut_on_its_weakest_pairs():
    """Three cliques of 6 bridged by pairs heavy enough to make one component of 18, over a
    full-matrix limit of 8: cut on the bridges, each clique is one case, as the exact method has it."""
    n, a, b, weight = cliques([6, 6, 6], 0.9, 0.5)
    exact = average_linkage(n, a, b, weight, 0.35)
    cut = average_linkage(n, a, b, weight, 0.35, dense_max=8)
    assert (together(cut) == together(exact)).all() and len(set(cut.tolist())) == 3


@pytest.mark.parametrize("seed", range(10))
def test_cut_components_keep_decisions_and_do_not_depend_on_order(seed):
    rng = np.random.default_rng(seed)
    n = 60
    a, b, weight = random_graph(rng, n)
    weight = np.maximum(weight, rng.choice([0.0, 0.5], len(weight)))  # a large component
    cannot, must = [[int(a[0]), int(b[0])]], [[int(a[1]), int(b[1])]]
    base = average_linkage(n, a, b, weight, 0.35, cannot=cannot, must=must, dense_max=10)
    assert base[a[0]] != base[b[0]]
    assert base[a[1]] == base[b[1]] or base[a[1]] in (base[a[0]], base[b[0]])
    order = rng.permutation(len(a))
    swapped = average_linkage(n, b[order], a[order], weight[order], 0.35, cannot=cannot, must=must, dense_max=10)
    assert (together(swapped) == together(base)).all()


@pytest.mark.parametrize("seed", range(8))
def test_the_cases_a_night_reaches_are_those_of_clustering_everything(seed):
    """``assign_cases(..., reach=tonight)`` clusters only the components tonight's letters and
    the decided letters belong to: their cases, duplicates and relations are those clustering
    every letter gives; the other letters get none."""
    import pandas as pd

    from pipeline import schema
    from pipeline.decisions import Effective
    from pipeline.dedup.cases import assign_cases
    rng = np.random.default_rng(seed)
    n = 300
    a, b, weight = random_graph(rng, n)
    keep = rng.random(len(a)) < 0.4  # a sparse graph: many components, some large
    a, b, weight = a[keep], b[keep], weight[keep]
    ids = np.array([f"L{i:04d}" for i in range(n)])
    letters = pd.DataFrame({schema.LETTER_ID: ids,
                            schema.RECEIVED_AT: pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 90, n), "D")})
    relation = rng.choice([schema.SAME_MATTER, schema.REPEAT_PETITION, schema.EXACT_COPY, schema.POSSIBLE], len(a),
                          p=[0.6, 0.2, 0.05, 0.15])
    links = pd.DataFrame({schema.LETTER_A: ids[a], schema.LETTER_B: ids[b], schema.RELATION: relation,
                          schema.LINK_SCORE: np.where(relation == schema.EXACT_COPY, 1.0, weight)})
    decided = Effective(must_link={(ids[3], ids[200])}, cannot_link={(ids[a[0]], ids[b[0]])},
                        detached={ids[7]: "2024-03-01T09:00:00"})
    whole = assign_cases(letters, links, decided, 0.35, max_letters=20)
    tonight = rng.random(n) < 0.05
    part = assign_cases(letters, links, decided, 0.35, max_letters=20, reach=tonight)
    reached = (part[schema.CASE_ID] != "").to_numpy()
    assert reached[tonight].all() and reached[[3, 200, 7, a[0], b[0]]].all() and not reached.all()
    pd.testing.assert_frame_equal(part[reached], whole[reached])
    assert (part.loc[~reached, [schema.DUPLICATE_OF, schema.RELATION]] == "").all().all()


@pytest.mark.parametrize("seed", range(6))
def test_a_reach_clusters_only_its_parts_as_clustering_everything_does(seed):
    """With ``reach``, the parts of a cut component that hold no reach item are left out (-1)
    and the others keep the groups clustering every item gives them."""
    rng = np.random.default_rng(seed)
    n, a, b, weight = cliques([6, 7, 6, 5, 6], 0.9, 0.5)
    extra_a, extra_b, extra_w = random_graph(rng, n)
    a, b, weight = np.concatenate((a, extra_a)), np.concatenate((b, extra_b)), np.concatenate((weight, extra_w / 2))
    everything = average_linkage(n, a, b, weight, 0.35, dense_max=8)
    reach = np.zeros(n, dtype=bool)
    reach[rng.choice(n, 2, replace=False)] = True
    part = average_linkage(n, a, b, weight, 0.35, dense_max=8, reach=reach)
    clustered = part >= 0
    assert clustered[reach].all() and not clustered.all()
    assert (together(part[clustered]) == together(everything[clustered])).all()


@pytest.mark.parametrize("seed", range(10))
def test_each_item_is_clustered_in_its_lightest_component_that_fits(seed):
    """A part is the item's component of the pairs of at least threshold + k x SPLIT_STEP for
    the least k at which that component holds at most ``dense_max`` items: found level by level
    with plain connected components, as the definition reads."""
    from pipeline.dedup.clustering import SPLIT_STEP, _parts
    rng = np.random.default_rng(seed)
    n = 120
    a, b, weight = random_graph(rng, n)
    weight = np.round(np.maximum(weight, rng.choice([0.0, 0.6], len(weight))) * 1000)
    dense_max = int(rng.choice([3, 8, 30]))
    expected = np.full(n, -1)
    level, numbered = 350, 0
    while (expected < 0).any():
        strong = weight >= level
        component, size = link_components(n, a[strong], b[strong])
        fits = (expected < 0) & (size[component] <= dense_max)
        expected[fits] = numbered + component[fits]
        numbered, level = numbered + len(size), level + SPLIT_STEP
    parts = _parts(n, a, b, weight, 350, dense_max)
    assert (together(parts) == together(expected)).all()
    assert np.bincount(parts).max() <= dense_max
