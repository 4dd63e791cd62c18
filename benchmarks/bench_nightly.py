"""A nightly of 10,000 letters against a 100,000-letter history, on this machine's cores.

The history is built first (untimed for the target): N_HISTORY synthetic letters taken
through ``petition nightly`` into a fresh home, so the index and the archive hold them. Then
tonight's letters (the next N_TONIGHT of the same generation, later dates) go through
``petition nightly`` into the same home, and that run is timed stage by stage from its
manifest. The reference measured in the same run is the history's own nightly, per 1,000
letters. Target: tonight's nightly under 2 minutes.

Usage: python benchmarks/bench_nightly.py --out bench/nightly.json [--history 100000] [--tonight 10000]
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

from bench_dedupe import petition, save, timed

TARGET_SECONDS = 120


def stage_seconds(run):
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    return {name: stage["seconds"] for name, stage in manifest["stages"].items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--tonight", type=int, default=10_000)
    parser.add_argument("--work", help="working folder (default: a new temporary one)")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-nightly-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    letters = work / "letters.parquet"
    timed([sys.executable, "-m", "pipeline.synth", "--n", args.history + args.tonight,
           "--seed", 5, "--out", letters, "--truth-dir", work / "truth"], "synth", log)
    dump = pd.read_parquet(letters)
    dump["_date"] = pd.to_datetime(dump["来信日期"].str.replace(r"[年月]", "-", regex=True).str.rstrip("日"),
                                   errors="coerce", format="mixed")
    dump = dump.sort_values("_date", kind="stable", na_position="first").drop(columns="_date")
    dump.iloc[:args.history].to_parquet(work / "history.parquet", index=False)
    dump.iloc[args.history:].to_parquet(work / "tonight.parquet", index=False)
    home = work / "home"
    history = timed(petition("nightly", work / "history.parquet", "--home", home), "history nightly", log)
    tonight = timed(petition("nightly", work / "tonight.parquet", "--home", home), "tonight nightly", log)
    runs = sorted((p for p in home.iterdir() if (p / "manifest.json").exists()), key=lambda p: p.stat().st_mtime)
    results = {
        "history_letters": args.history, "tonight_letters": args.tonight,
        "history_nightly": history | {"stage_seconds": stage_seconds(runs[0])},
        "tonight_nightly": tonight | {"stage_seconds": stage_seconds(runs[-1])},
        "reference_history_seconds_per_1000": round(history["seconds"] / args.history * 1000, 2),
        "tonight_seconds_per_1000": round(tonight["seconds"] / args.tonight * 1000, 2),
        "target_tonight_seconds": TARGET_SECONDS,
        "meets_target": tonight["seconds"] <= TARGET_SECONDS,
    }
    results["ratio_tonight_vs_history_per_letter"] = round(
        results["tonight_seconds_per_1000"] / results["reference_history_seconds_per_1000"], 2)
    save(results, args.out)


if __name__ == "__main__":
    main()
