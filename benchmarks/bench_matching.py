"""Dedupe quality on real letters: the board's cases and links scored on judged pairs the
match model did not see, beside a plain rule measured in the same run.

1. The bundled sample and the board (``../shared/corpora/messageboard``) each through
   ``petition nightly`` into a home of their own, with the default match model.
2. The judged pairs are split into two halves that share no letter
   (``quality.judged_halves``). For each half: a match model is trained on the sample's truth
   and the *other* half (``petition train-matcher``), the board is deduped with it from an
   empty index, and its cases and links are scored on this half. Both halves pooled.
3. References, same run: plain TF-IDF cosine ≥ 0.5 over every pair of the board, connected
   (dedupe's own jieba-IDF vectors); and the product's held-out links taken as connected
   components (what average linkage adds).
4. For information: the default model (trained on every judged pair, so not held out) on all
   judged pairs; the board's 10 largest cases with their labels; the sample's truth per
   relation (precision and recall).

Usage:  python benchmarks/bench_matching.py --out bench/matching.json
"""
import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from pipeline import dedupe, schema
from pipeline.config import PROJECT_ROOT, load_config
from pipeline.dedup import quality
from pipeline.rundir import RunDir
from pipeline.train_matcher import home_pool, train_matcher_command

BOARD = PROJECT_ROOT.parent / "shared" / "corpora" / "messageboard"
SAMPLE = PROJECT_ROOT / "corpora" / "sample"
TARGETS = {"case_precision": 0.95, "case_recall": 0.90, "case_reword_recall": 0.85}


def nightly(home, *arguments):
    """``petition nightly`` into ``home``; returns its run directory."""
    petition = Path(sys.executable).parent / "petition"
    subprocess.run([str(petition), "nightly", *map(str, arguments), "--home", str(home)], check=True,
                   stdout=subprocess.DEVNULL)
    return next(path for path in home.iterdir() if (path / "cases.csv").exists())


def case_of(run):
    """{letter id: case id} of a deduped run."""
    letters = pd.read_parquet(run / "deduped.parquet", columns=[schema.LETTER_ID, schema.CASE_ID])
    return dict(zip(letters[schema.LETTER_ID].astype(str), letters[schema.CASE_ID]))


def connected(run):
    """{letter id: component} of a run's links (plain connected components)."""
    letters = pd.read_parquet(run / "deduped.parquet", columns=[schema.LETTER_ID])[schema.LETTER_ID].astype(str)
    links = pd.read_csv(run / "links.csv", dtype=str, encoding="utf-8-sig")
    ids = pd.Index(letters)
    a, b = ids.get_indexer(links[schema.LETTER_A]), ids.get_indexer(links[schema.LETTER_B])
    graph = sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(len(ids), len(ids)))
    return dict(zip(ids, connected_components(graph, directed=False)[1]))


def held_out(config, sample_home, board_home, board_run, judged, work):
    """Pooled scores of the product trained on one half of the judged pairs, on the other."""
    parts = {"cases": [], "links": [], "cases_connected": []}
    thresholds = []
    first, second = quality.judged_halves(judged)
    for number, (tune, test) in enumerate(((first, second), (second, first))):
        tune_file = work / f"tune{number}.csv"
        tune.to_csv(tune_file, index=False)
        matcher = train_matcher_command(config, pairs=[(sample_home, SAMPLE / "truth_pairs.csv"),
                                                       (board_home, tune_file)], out=work / f"matcher{number}")
        thresholds.append(matcher.threshold)
        settings = dataclasses.replace(config.dedupe, matcher=work / f"matcher{number}")
        dedupe.run_stage(RunDir(board_run), dataclasses.replace(config, dedupe=settings),
                         index=work / f"index{number}", progress=False)
        links = pd.read_csv(board_run / "links.csv", dtype=str, encoding="utf-8-sig")
        parts["cases"].append(quality.case_scores(case_of(board_run), test))
        parts["links"].append(quality.link_scores(links, test))
        parts["cases_connected"].append(quality.case_scores(connected(board_run), test))
    return {name: quality.pooled(scores) for name, scores in parts.items()}, thresholds


def largest_cases(run, count=10):
    cases = pd.read_csv(run / "cases.csv", dtype=str, encoding="utf-8-sig")
    cases["letters"] = cases["letters"].astype(int)
    top = cases.sort_values("letters", ascending=False).head(count)
    return top[["case_id", "label", "letters", "petitioners", "first_date", "last_date"]].to_dict("records")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if not (BOARD / "judged_pairs.csv").exists():
        print(f"[bench] {BOARD}/judged_pairs.csv not found; matching benchmark skipped")
        return
    config = load_config()
    work = Path(tempfile.mkdtemp(prefix="bench-matching-"))
    try:
        sample_run = nightly(work / "sample", SAMPLE / "letters.csv")
        board_run = nightly(work / "board", BOARD / "messages.xlsx", "--channel", "online",
                            "--dict", BOARD / "place_words.txt")
        judged = pd.read_csv(BOARD / "judged_pairs.csv", dtype=str)
        truth = pd.read_csv(SAMPLE / "truth_pairs.csv", dtype=str, encoding="utf-8-sig")
        default = {"cases": quality.case_scores(case_of(board_run), judged),
                   "links": quality.link_scores(pd.read_csv(board_run / "links.csv", dtype=str,
                                                            encoding="utf-8-sig"), judged),
                   "largest_cases": largest_cases(board_run)}
        sample_truth = quality.truth_scores(pd.read_parquet(sample_run / "deduped.parquet"),
                                            pd.read_csv(sample_run / "links.csv", dtype=str, encoding="utf-8-sig"),
                                            truth)
        reference = quality.cosine_reference(home_pool(work / "board", config, work / "pool"), 0.5)
        held, thresholds = held_out(config, work / "sample", work / "board", board_run, judged, work)
        halves = quality.judged_halves(judged)
        reference_scores = quality.pooled([quality.case_scores(reference, half) for half in halves])
        cases = held["cases"]
        results = {
            "data": {"board": str(BOARD / "messages.xlsx"), "judged_pairs": len(judged),
                     "held_out_pairs": sum(len(half) for half in halves)},
            "held_out": {**held, "link_thresholds": thresholds, "case_probability": config.dedupe.case_probability},
            "reference_tfidf_cosine_0.5_connected": reference_scores,
            "targets": TARGETS,
            "targets_met": {"case_precision": cases["precision"] >= TARGETS["case_precision"],
                            "case_recall": cases["recall"] >= TARGETS["case_recall"],
                            "case_reword_recall": cases["reword_recall"] >= TARGETS["case_reword_recall"]},
            "default_model_all_judged_pairs_not_held_out": default,
            "sample_truth_default_model": sample_truth,
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        print(json.dumps({key: results[key] for key in ("held_out", "reference_tfidf_cosine_0.5_connected",
                                                        "targets_met")}, indent=2, ensure_ascii=False, default=str))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
