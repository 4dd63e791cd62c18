"""A night of 10,000 letters against a history, on this machine's cores: stage by stage,
with peak memory.

The history is taken first: HISTORY synthetic letters through ``petition nightly`` into an
empty home, so the index and the archive hold them (``make bench``: 100,000; ``make
bench-scale``: a million, with targets for the history's nightly itself). Then tonight's
letters, the next TONIGHT letters by date, go through ``petition nightly`` into the same home.
Both runs are timed stage by stage (seconds from the manifest; peak memory of the process tree
and of its largest process, sampled while each stage runs). The reference measured in the same
run is the history's own nightly, per 1,000 letters. The runs keep their data (the segment
cache) in the working folder, so the history is segmented from an empty cache.

Usage:
    python benchmarks/bench_nightly.py --out bench/nightly.json [--history 100000] [--tonight 10000]
    python benchmarks/bench_nightly.py --out bench/scale.json --history 1000000 \\
        --target-tonight 60 --target-history 900 --target-gb 6 [--engine spark] [--work DIR]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

from bench_dedupe import petition, save, timed

STAGE_END = r"^(ingest|normalize|segment|classify|dedupe|report): \d+ rows in"


def stage_seconds(run):
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    return {name: stage["seconds"] for name, stage in manifest["stages"].items()}


def split_dump(letters, history, work):
    """Write the first ``history`` letters by date to ``work/history.parquet`` and the rest to
    ``work/tonight.parquet``."""
    dump = pd.read_parquet(letters)
    dump["_date"] = pd.to_datetime(dump["来信日期"].str.replace(r"[年月]", "-", regex=True).str.rstrip("日"),
                                   errors="coerce", format="mixed")
    dump = dump.sort_values("_date", kind="stable", na_position="first").drop(columns="_date")
    dump.iloc[:history].to_parquet(work / "history.parquet", index=False)
    dump.iloc[history:].to_parquet(work / "tonight.parquet", index=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--tonight", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=5, help="the generator's seed")
    parser.add_argument("--engine", choices=("local", "spark"), default="local")
    parser.add_argument("--master", help="Spark master (with --engine spark; default: the configuration's)")
    parser.add_argument("--target-tonight", type=float, default=120, help="seconds for tonight's nightly")
    parser.add_argument("--target-history", type=float, help="seconds for the history's nightly")
    parser.add_argument("--target-gb", type=float, help="peak memory (GB, process tree) of either nightly")
    parser.add_argument("--work", help="working folder (default: a new temporary one; kept)")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-nightly-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    total = args.history + args.tonight
    letters = work / f"letters-{total}-{args.seed}.parquet"
    if not letters.exists():  # a kept working folder's dump is reused: the generator is deterministic
        timed([sys.executable, "-m", "pipeline.synth", "--n", total,
               "--seed", args.seed, "--out", letters, "--truth-dir", work / "truth"], "synth", log)
    split_dump(letters, args.history, work)
    home = work / f"home-{args.engine}"
    if home.exists():
        sys.exit(f"[bench] {home} exists: the history must go into an empty home; remove it first")
    # a data folder of its own: the segment cache (in ``paths.data_dir``) starts empty, as a
    # new office's would, whatever earlier runs of this checkout cached
    data = work / f"data-{args.engine}"
    shutil.rmtree(data, ignore_errors=True)
    os.environ["PETITION_DATA_DIR"] = str(data)
    engine = ["--engine", args.engine] if args.engine != "local" else []
    engine += ["--master", args.master] if args.master and args.engine == "spark" else []
    history = timed(petition("nightly", work / "history.parquet", "--home", home, *engine),
                    "history nightly", log, phase_end=STAGE_END)
    tonight = timed(petition("nightly", work / "tonight.parquet", "--home", home, *engine),
                    "tonight nightly", log, phase_end=STAGE_END)
    runs = sorted((p for p in home.iterdir() if (p / "manifest.json").exists()), key=lambda p: p.stat().st_mtime)
    results = {
        "history_letters": args.history, "tonight_letters": args.tonight, "engine": args.engine,
        "history_nightly": history | {"stage_seconds": stage_seconds(runs[0])},
        "tonight_nightly": tonight | {"stage_seconds": stage_seconds(runs[-1])},
        "reference_history_seconds_per_1000": round(history["seconds"] / args.history * 1000, 2),
        "tonight_seconds_per_1000": round(tonight["seconds"] / args.tonight * 1000, 2),
        "targets": {"tonight_seconds": args.target_tonight, "history_seconds": args.target_history,
                    "peak_tree_gb": args.target_gb},
    }
    results["ratio_tonight_vs_history_per_letter"] = round(
        results["tonight_seconds_per_1000"] / results["reference_history_seconds_per_1000"], 2)
    met = {"tonight_seconds": tonight["seconds"] <= args.target_tonight}
    if args.target_history:
        met["history_seconds"] = history["seconds"] <= args.target_history
    if args.target_gb:
        met["peak_tree_gb"] = max(history["peak_tree_rss_gb"], tonight["peak_tree_rss_gb"]) <= args.target_gb
    results["met"] = met
    save(results, args.out)


if __name__ == "__main__":
    main()
