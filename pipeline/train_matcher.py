"""Train the match model (``pipeline.dedup.matcher``) from labelled pairs of letters and write
it with its model card.

``petition train-matcher --pairs HOME FILE [--pairs HOME FILE ...] --out DIR`` reads the letters
of each nightly home (every run's ``segmented.parquet``) and a CSV of pairs of them:

* judged pairs (``letter_a, letter_b, label``; label SAME or DIFF, by reading): each pair is a
  training pair;
* truth pairs (``letter_a, letter_b, relation``: generated letters' truth, every pair one
  matter): letters joined by truth pairs are one matter, and a stratified draw of
  ``train_matcher.truth_pairs`` of the home's candidate pairs (``dedup.candidates``),
  labelled by it, are training pairs. Together they weigh ``train_matcher.truth_weight`` times
  as much as the real pairs.

Each home's analyst decisions (``petition decide same/different``) in force are training pairs
too (``--no-decisions`` leaves them out). The card records each source's hash and pair counts,
the out-of-fold precision and recall (folds that keep letters joined by pairs together), and
the link threshold: the lowest P whose out-of-fold precision on the real pairs (judged and
decided; the truth's when there are none) reaches ``train_matcher.target_precision``.
"""
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedGroupKFold

from pipeline import schema
from pipeline.classifier.textmodel import library_versions
from pipeline.decisions import DecisionStore
from pipeline.dedup.candidates import Candidates, Pool
from pipeline.dedup.evidence import FEATURES, pair_evidence
from pipeline.dedup.features import Featurizer, featurize
from pipeline.dedup.index import DedupeIndex
from pipeline.dedup.matcher import Matcher, make_matcher
from pipeline.errors import PetitionError
from pipeline.ingest import file_sha256
from pipeline.intake import readers

LABEL, SAME, DIFF = "label", "SAME", "DIFF"
TRUTH_RELATION = "relation"
GRID = np.round(np.arange(0.2, 0.96, 0.05), 2)  # link thresholds tried: below 0.2 a pair is rather not one matter
TEXTS = (schema.CLEAN_TEXT, schema.TOKENS)
SEGMENTED = "segmented.parquet"


def home_letters(home):
    """Every letter of the runs of the nightly ``home`` (their ``segmented.parquet``; each
    id once, its latest run's copy)."""
    files = sorted(Path(home).glob(f"*/{SEGMENTED}"))
    if not files:
        raise PetitionError(f"{home}: no run with {SEGMENTED}; run `petition nightly --home {home}` first")
    columns = [schema.LETTER_ID, schema.RECEIVED_AT, schema.ADDRESSEE, schema.PETITIONER_KEY, *TEXTS]
    frames = [pd.read_parquet(path, columns=columns + [schema.MASKED_NAMES] * (schema.MASKED_NAMES in
                                                                               pq.read_schema(path).names))
              for path in files]
    letters = pd.concat(frames, ignore_index=True)
    letters[schema.LETTER_ID] = letters[schema.LETTER_ID].astype(str)
    return letters.drop_duplicates(schema.LETTER_ID, keep="last").reset_index(drop=True)


def home_pool(home, config, directory, processes=1):
    """A dedupe ``Pool`` of every letter of ``home``, all of them new (no index history), their
    features saved into the new folder ``directory`` (``featurize``), which it reads from."""
    letters = home_letters(home)
    texts, tokens = letters[schema.CLEAN_TEXT].tolist(), letters[schema.TOKENS].tolist()
    size = config.dedupe.chunk_size
    chunks = ((texts[i:i + size], tokens[i:i + size]) for i in range(0, len(texts), size))
    batch = featurize(letters.drop(columns=list(TEXTS)), chunks, Featurizer.from_config(config), directory,
                      processes)
    return Pool(DedupeIndex(Path(home) / "index", config_hash=""), batch, config.dedupe.tfidf_features)


def located(pool, first, second):
    """Pool positions of letter ids ``first[i]``, ``second[i]``; -1 where a letter is not there."""
    ids = pd.Index(pool.letters[schema.LETTER_ID].astype(str))
    return ids.get_indexer(pd.Series(first, dtype=str)), ids.get_indexer(pd.Series(second, dtype=str))


def truth_pairs(pool, truth, settings, count, seed):
    """(a, b, same) drawn from the pool's candidate pairs, labelled by the truth (letters joined
    by its pairs are one matter): a draw of ``count`` pairs in all, stratified by label."""
    a, b = located(pool, truth[schema.LETTER_A], truth[schema.LETTER_B])
    known = (a >= 0) & (b >= 0)
    n = len(pool.letters)
    _, matter = connected_components(sp.coo_matrix((np.ones(known.sum()), (a[known], b[known])), shape=(n, n)),
                                     directed=False)
    candidates = Candidates(pool, settings)
    listed = [candidates.pairs(*bounds) for bounds in candidates.chunks(settings.chunk_pairs)]
    a = np.concatenate([x for x, _ in listed] + [np.zeros(0, dtype=np.int64)])
    b = np.concatenate([y for _, y in listed] + [np.zeros(0, dtype=np.int64)])
    same = matter[a] == matter[b]
    rng = np.random.default_rng(seed)
    share = min(1.0, count / max(1, len(a)))
    keep = np.concatenate([rng.choice(np.flatnonzero(same == value), round(share * (same == value).sum()),
                                      replace=False) for value in (True, False)])
    keep.sort()
    return a[keep], b[keep], same[keep]


def labelled_pairs(pool, path, config):
    """Training pairs of ``pool`` from the CSV at ``path``: a frame of a, b, same, source."""
    table = readers.read_table(path).frame.fillna("")
    missing = [c for c in (schema.LETTER_A, schema.LETTER_B) if c not in table.columns]
    if missing or (LABEL not in table.columns and TRUTH_RELATION not in table.columns):
        raise PetitionError(f"{path}: expected columns letter_a, letter_b and label (SAME/DIFF) or relation "
                            f"(truth pairs); it has {[c for c in table.columns if c != schema.SOURCE_ROW]}")
    if LABEL in table.columns:
        bad = ~table[LABEL].isin((SAME, DIFF))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise PetitionError(f"{path}: row {table[schema.SOURCE_ROW].iloc[row]}, column {LABEL}: "
                                f"{table[LABEL].iloc[row]!r} is not SAME or DIFF")
        a, b = located(pool, table[schema.LETTER_A], table[schema.LETTER_B])
        same, source = (table[LABEL] == SAME).to_numpy(), "judged"
    else:
        settings = config.train_matcher
        a, b, same = truth_pairs(pool, table, config.dedupe, settings.truth_pairs, settings.seed)
        source = "truth"
    found = (a >= 0) & (b >= 0) & (a != b)
    if not found.any():
        raise PetitionError(f"{path}: none of its pairs are letters of the home given with it")
    return pd.DataFrame({"a": a[found], "b": b[found], "same": same[found], "source": source}), int((~found).sum())


def decided_pairs(pool, home):
    """Training pairs from the analysts' decisions in force in ``home`` (same / different)."""
    effective = DecisionStore.for_home(home).effective()
    frames = []
    for pairs, same in ((effective.must_link, True), (effective.cannot_link, False)):
        pairs = sorted(pairs)
        a, b = located(pool, [x for x, _ in pairs], [y for _, y in pairs])
        found = (a >= 0) & (b >= 0)
        frames.append(pd.DataFrame({"a": a[found], "b": b[found], "same": same, "source": "decided"}))
    return pd.concat(frames, ignore_index=True)


def pair_groups(n, a, b):
    """Letter groups for cross-validation: letters joined by training pairs stay in one fold."""
    return connected_components(sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)[1][a]


def out_of_fold(evidence, same, weight, groups, folds, seed):
    """Out-of-fold P(same matter) of each training pair (folds keep ``groups`` whole)."""
    oof = np.zeros(len(same))
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(evidence, same, groups):
        model = make_matcher(seed=seed).fit(evidence.iloc[train], same[train], calibrated__sample_weight=weight[train])
        oof[test] = model.predict_proba(evidence.iloc[test])[:, 1]
    return oof


def link_threshold(probability, same, target):
    """The lowest grid P whose links (P at least it) reach precision ``target``; the most
    precise one when none does."""
    precision = [same[probability >= t].mean() if (probability >= t).any() else 0.0 for t in GRID]
    reached = [t for t, p in zip(GRID, precision) if p >= target]
    return float(reached[0] if reached else GRID[int(np.argmax(precision))])


def scores(probability, same, threshold):
    """Precision, recall and average precision of links at ``threshold``."""
    linked = probability >= threshold
    return {"pairs": int(len(same)), "same": int(same.sum()),
            "precision": round(float(same[linked].mean()), 3) if linked.any() else None,
            "recall": round(float(linked[same].mean()), 3) if same.any() else None,
            "average_precision": round(float(average_precision_score(same, probability)), 3)
            if 0 < same.sum() < len(same) else None}


def train_matcher_command(config, *, pairs, out, decisions=True, processes=None):
    """Train the match model on ``pairs`` ([(home, csv path), ...]) and the homes' decisions;
    write it with its card into ``out``. Returns the ``Matcher``."""
    start = time.perf_counter()
    settings = config.train_matcher
    processes = processes or config.dedupe.processes
    homes = list(dict.fromkeys(Path(home) for home, _ in pairs))
    frames, sources, offset = [], [], 0
    for home in homes:
        # the home's features are saved into a scratch folder beside its runs, read from there
        with tempfile.TemporaryDirectory(prefix=".train-matcher.", dir=home) as scratch:
            pool = home_pool(home, config, Path(scratch) / "features", processes)
            tables = []
            for _, path in ((h, p) for h, p in pairs if Path(h) == home):
                table, unknown = labelled_pairs(pool, path, config)
                tables.append(table)
                sources.append({"home": str(home), "file": str(path), "sha256": file_sha256(path),
                                "kind": table.source[0], "pairs": len(table), "same": int(table.same.sum()),
                                "letters_not_found": unknown})
            if decisions:
                tables.append(decided_pairs(pool, home))
                sources.append({"home": str(home), "kind": "decided", "pairs": len(tables[-1]),
                                "same": int(tables[-1].same.sum())})
            table = pd.concat(tables, ignore_index=True)
            evidence = pair_evidence(pool, table.a.to_numpy(), table.b.to_numpy(), workers=processes)
            groups = pair_groups(len(pool.letters), table.a.to_numpy(), table.b.to_numpy()) + offset
            offset = groups.max() + 1
            frames.append(pd.concat([evidence, table[["same", "source"]].assign(group=groups)], axis=1))
    data = pd.concat(frames, ignore_index=True)
    same, real = data.same.to_numpy(dtype=bool), (data.source != "truth").to_numpy()
    # truth pairs of generated letters shape the model; together they weigh truth_weight x the real pairs
    weight = np.where(real | ~real.any(), 1.0, settings.truth_weight * real.sum() / max(1, (~real).sum()))
    evidence = data[list(FEATURES)]
    print(f"train-matcher: {len(data)} pairs ({same.sum()} same) from {len(homes)} home(s)", file=sys.stderr)
    oof = out_of_fold(evidence, same, weight, data.group.to_numpy(), settings.cv_folds, settings.seed)
    judged = real if real.any() else np.ones(len(data), dtype=bool)
    threshold = link_threshold(oof[judged], same[judged], settings.target_precision)
    model = make_matcher(seed=settings.seed).fit(evidence, same, calibrated__sample_weight=weight)
    card = {
        "created": time.strftime("%Y-%m-%d"),
        "train_command": shlex.join(["petition", "train-matcher"] + [str(part) for home, path in pairs
                                                                      for part in ("--pairs", home, path)]
                                    + ["--out", str(out)] + ([] if decisions else ["--no-decisions"])),
        "features": list(FEATURES),
        "data": sources,
        "target_precision": settings.target_precision,
        "threshold_chosen_on": "judged and decided pairs" if real.any() else "truth pairs",
        "out_of_fold_curve": {f"{t:.2f}": scores(oof[judged], same[judged], t) for t in GRID},
        "out_of_fold": {name: scores(oof[mask], same[mask], threshold)
                        for name, mask in (("all", np.ones(len(data), dtype=bool)),
                                           *((source, (data.source == source).to_numpy())
                                             for source in data.source.unique()))},
        "parameters": {"cv_folds": settings.cv_folds, "seed": settings.seed,
                       "truth_pairs": settings.truth_pairs, "truth_weight": settings.truth_weight, **make_matcher().get_params()["calibrated"]
                       .estimator.get_params()},
        "versions": library_versions(),
        "train_seconds": round(time.perf_counter() - start, 1),
    }
    card["parameters"]["monotonic_cst"] = list(card["parameters"]["monotonic_cst"])
    matcher = Matcher(model, threshold, card)
    matcher.save(out)
    chosen = card["out_of_fold"]["judged" if "judged" in card["out_of_fold"] else "all"]
    print(f"train-matcher: wrote {out} ({card['train_seconds']} s); links from P ≥ {threshold}: out-of-fold "
          f"precision {chosen['precision']}, recall {chosen['recall']}", file=sys.stderr)
    return matcher
