"""The Spark engine beside the local one on one dump: stage seconds, and each Spark task's cost.

Runs ``nightly`` over DUMP (default: the bundled sample) twice in this process, into two new
homes: with the local engine (forked workers), then with the Spark engine on MASTER (default
local[2]). Writes, per engine, the stages' seconds from the run's manifest; for Spark, the
session's start-up and, per task (the function each stage hands to ``parallel``: normalize's
``LetterNormalizer``, segment's ``Segmenter.cut_joined``, classify's prediction and
attributes, dedupe's features and candidate scoring), the chunks it ran and the seconds each
took on its worker: what a cluster of W workers divides by W (README: Spark). Both runs'
values must be the same (``compare_runs``); the figures say so.

Usage: python benchmarks/bench_spark.py --out bench/spark.json [--dump FILE] [--master local[2]]
"""
import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_dedupe import save
from bench_nightly import stage_seconds
from compare_runs import differences

from pipeline import engine, nightly, schema
from pipeline.config import PROJECT_ROOT, load_config
from pipeline.rundir import RunDir


def task_costs(costs, letters):
    """Figures of one task: its pickled size (sent to every worker), its chunks' count, mean,
    median, largest and total seconds, and seconds per 1,000 letters of the dump."""
    seconds = costs["seconds"]
    return {"payload_megabytes": round(costs["payload_bytes"] / 2**20, 1), "chunks": len(seconds), "mean_seconds": round(statistics.mean(seconds), 3),
            "median_seconds": round(statistics.median(seconds), 3), "max_seconds": round(max(seconds), 3),
            "total_seconds": round(sum(seconds), 2),
            "seconds_per_1000_letters": round(sum(seconds) / letters * 1000, 3)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--dump", default=str(PROJECT_ROOT / "corpora" / "sample" / "letters.csv"))
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--work", help="working folder (default: a new temporary one; kept)")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-spark-"))
    os.environ.setdefault("PETITION_KEY", "bench-key-not-secret")
    config = load_config()
    results, runs = {"dump": args.dump, "master": args.master, "work": str(work)}, {}
    for name in ("local", "spark"):
        chosen = dataclasses.replace(config, engine=dataclasses.replace(config.engine, name=name, master=args.master),
                                     paths=dataclasses.replace(config.paths, data_dir=work / f"data-{name}"))
        if name == "spark":
            start = time.perf_counter()
            mapper = engine.mapper_for(chosen.engine).record_costs()
            mapper.session().range(1).collect()
            results["spark_session_start_seconds"] = round(time.perf_counter() - start, 2)
        start = time.perf_counter()
        runs[name] = nightly.run_nightly([Path(args.dump)], work / name, chosen)
        results[f"{name}_nightly_seconds"] = round(time.perf_counter() - start, 2)
        results[f"{name}_stage_seconds"] = stage_seconds(runs[name])
    letters = RunDir(runs["local"]).manifest()[schema.MANIFEST_STAGES]["normalize"]["rows_out"]
    results["letters"] = letters
    results["spark_task_costs"] = {task: task_costs(costs, letters) for task, costs in mapper.costs_.items()
                                   if costs["seconds"]}
    results["differences_local_vs_spark"] = differences(runs["local"], runs["spark"])
    save(results, args.out)
    return 1 if results["differences_local_vs_spark"] else 0


if __name__ == "__main__":
    sys.exit(main())
