"""How right dedupe is, measured on labelled pairs of letters.

* Judged pairs (``letter_a, letter_b, label`` SAME/DIFF, ``kind`` COPY/REWORD: read by people):
  :func:`case_scores` (are SAME pairs in one case, DIFF pairs not) and :func:`link_scores`
  (are SAME pairs linked directly); :func:`judged_halves` splits them into two halves that
  share no letter, to tune on one and measure on the other.
* Truth pairs of generated letters (``letter_a, letter_b, relation``): :func:`truth_scores`.
* :func:`cosine_reference`: cases of a plain rule (TF-IDF cosine at least a threshold,
  connected), the reference measured beside the product in the same run.
"""
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from pipeline import schema

SAME, REWORD = "SAME", "REWORD"


def _components(n, a, b):
    return connected_components(sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)[1]


def case_scores(case_of, pairs):
    """Pairwise scores of cases on judged ``pairs``: precision = share of the pairs put in one
    case that are SAME; recall = share of SAME pairs in one case; ``reword_recall`` the same
    over SAME pairs of kind REWORD. ``case_of``: {letter id: case id} (a Series or dict)."""
    case_of = pd.Series(case_of, dtype=object)
    first, second = case_of.reindex(pairs[schema.LETTER_A]).to_numpy(), case_of.reindex(pairs[schema.LETTER_B]).to_numpy()
    together = pd.notna(first) & (first == second)
    same = (pairs["label"] == SAME).to_numpy()
    reword = same & (pairs.get("kind", pd.Series("", index=pairs.index)) == REWORD).to_numpy()
    return _scores(together, same, reword)


def link_scores(links, pairs):
    """Pairwise scores of direct links (``links`` frame) on judged ``pairs``, as ``case_scores``."""
    linked = set(zip(links[schema.LETTER_A].astype(str), links[schema.LETTER_B].astype(str)))
    together = np.array([(a, b) in linked or (b, a) in linked
                         for a, b in zip(pairs[schema.LETTER_A].astype(str), pairs[schema.LETTER_B].astype(str))],
                        dtype=bool)
    same = (pairs["label"] == SAME).to_numpy()
    reword = same & (pairs.get("kind", pd.Series("", index=pairs.index)) == REWORD).to_numpy()
    return _scores(together, same, reword)


def _scores(together, same, reword):
    def share(hits, out_of):
        return round(float(hits.sum() / out_of.sum()), 3) if out_of.any() else None
    return {"pairs": int(len(same)), "same": int(same.sum()), "together": int(together.sum()),
            "same_together": int((together & same).sum()), "reword": int(reword.sum()),
            "reword_together": int((together & reword).sum()),
            "precision": share(together & same, together), "recall": share(together & same, same),
            "reword_recall": share(together & reword, reword)}


def pooled(parts):
    """Scores of several ``case_scores``/``link_scores`` results taken together (counts summed)."""
    total = {key: sum(part[key] for part in parts)
             for key in ("pairs", "same", "together", "same_together", "reword", "reword_together")}

    def share(hits, out_of):
        return round(total[hits] / total[out_of], 3) if total[out_of] else None
    return {**total, "precision": share("same_together", "together"), "recall": share("same_together", "same"),
            "reword_recall": share("reword_together", "reword")}


def judged_halves(pairs, seed=0, giant=20):
    """Two halves of judged ``pairs`` that share no letter: (first, second) frames.

    Letters joined by pairs stay in one half; a group of more than ``giant`` letters (one
    prolific petitioner's letters, judged against each other) is cut into its SAME groups
    instead, and its DIFF pairs between halves are dropped. Groups are dealt to the halves
    largest first, each to the half with fewer pairs so far, ties at random."""
    ids = pd.Index(pd.unique(pd.concat([pairs[schema.LETTER_A], pairs[schema.LETTER_B]]).astype(str)))
    a, b = ids.get_indexer(pairs[schema.LETTER_A].astype(str)), ids.get_indexer(pairs[schema.LETTER_B].astype(str))
    group = _components(len(ids), a, b)
    same = (pairs["label"] == SAME).to_numpy()
    same_group = _components(len(ids), a[same], b[same])
    group = np.where(np.bincount(group)[group] > giant, len(ids) + same_group, group)
    pair_group = group[a]
    rng = np.random.default_rng(seed)
    weights = pd.Series(np.ones(len(a))).groupby(pair_group).sum()
    order = weights.index[np.lexsort((rng.random(len(weights)), -weights.to_numpy()))]
    half, load = {}, [0.0, 0.0]
    for g in order:
        half[g] = int(load[1] < load[0])
        load[half[g]] += weights[g]
    side = np.array([half.get(g, 0) for g in group])
    kept = side[a] == side[b]
    return tuple(pairs[kept & (side[a] == h)].reset_index(drop=True) for h in (0, 1))


def truth_scores(letters, links, truth):
    """Per relation, on generated letters: recall = share of the truth's pairs of that relation
    in one case; precision = share of our links of that relation whose letters the truth puts
    in one matter. ``letters`` have ``letter_id`` and ``case_id``."""
    case = letters.set_index(schema.LETTER_ID)[schema.CASE_ID]
    ids = pd.Index(pd.unique(pd.concat([truth[schema.LETTER_A], truth[schema.LETTER_B]])))
    matter = dict(zip(ids, _components(len(ids), ids.get_indexer(truth[schema.LETTER_A]),
                                       ids.get_indexer(truth[schema.LETTER_B]))))
    out = {}
    for relation in schema.RELATIONS:
        pairs = truth[truth[schema.RELATION] == relation]
        found = [case.get(a) is not None and case.get(a) == case.get(b)
                 for a, b in zip(pairs[schema.LETTER_A], pairs[schema.LETTER_B])]
        ours = links[links[schema.RELATION] == relation]
        right = [a in matter and matter.get(a) == matter.get(b) for a, b in zip(ours[schema.LETTER_A], ours[schema.LETTER_B])]
        out[relation] = {"recall": round(float(np.mean(found)), 3) if found else None,
                         "precision": round(float(np.mean(right)), 3) if right else None,
                         "true": len(pairs), "ours": len(ours)}
    return out


def cosine_reference(pool, threshold=0.5, chunk=2000):
    """{letter id: case} of the plain rule: letters with TF-IDF cosine at least ``threshold``
    (any two letters of the ``pool``), connected."""
    n = len(pool.letters)
    vectors = pool.vectors(np.arange(n))
    rows, cols = [], []
    for start in range(0, n, chunk):
        block = (vectors[start:start + chunk] @ vectors.T).tocoo()
        keep = block.data >= threshold
        rows.append(block.row[keep] + start)
        cols.append(block.col[keep])
    labels = _components(n, np.concatenate(rows), np.concatenate(cols))
    return dict(zip(pool.letters[schema.LETTER_ID].astype(str), labels))
