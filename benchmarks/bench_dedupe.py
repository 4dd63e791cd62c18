"""Dedupe benchmarks.

``board``: links per relation on the real message board (../shared), printed and saved.
``scale``: N synthetic letters (pipeline.synth) through ingest, normalize and segment, then
dedupe from an empty index; then a nightly increment of the 10,000 latest letters against
that index; every stage timed with its peak memory. In the same run, a reference: datasketch
MinHashLSH (same shingles, num_perm and threshold) against this project's numpy MinHash LSH
on 100,000 letters, and the ratio of their times.

``scale --segmented PATH`` reuses an earlier run's ``segmented.parquet`` instead (synth,
ingest, normalize and segment skipped): its first N letters by date, then the next 10,000.

Usage:
    python benchmarks/bench_dedupe.py board --out bench/dedupe_board.json
    python benchmarks/bench_dedupe.py scale --n 1000000 --out bench/dedupe_scale.json [--work DIR]
    python benchmarks/bench_dedupe.py scale --segmented RUN/segmented.parquet [--n N] --out FILE
"""
import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import PROJECT_ROOT, load_config
from pipeline.rundir import parquet_batches

INCREMENT = 10_000
REFERENCE_LETTERS = 100_000
TARGETS = {"dedupe_seconds": 600, "dedupe_peak_gb": 6.0, "increment_seconds": 60}


def tree_rss(pid):
    """Memory of a process and all its descendants, from /proc: (the tree's proportional set
    size, its largest process's resident size), bytes. Forked workers share their parent's
    pages until they write them: summing their resident sizes would count those pages once per
    process, the proportional size counts each page once (split among its sharers)."""
    total, largest, todo = 0, 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/smaps_rollup") as handle:
                sizes = dict(line.split()[:2] for line in handle if line.split()[0] in ("Rss:", "Pss:"))
            with open(f"/proc/{current}/task/{current}/children") as handle:
                todo.extend(int(child) for child in handle.read().split())
        except (OSError, ValueError):
            continue
        total, largest = total + int(sizes["Pss:"]) * 1024, max(largest, int(sizes["Rss:"]) * 1024)
    return total, largest


def gb(value):
    return round(value / 1e9, 2)


def timed(argv, label, log, phase_end=None):
    """Run ``argv``; return seconds, peak memory of its process tree (proportional set size,
    sampled every 0.2 s: ``tree_rss``) and of its largest process (``os.wait4``'s ru_maxrss).

    ``phase_end``: a regular expression matching the line the command prints when one of its
    phases ends (group 1: the phase's name), e.g. each stage's summary line. The result then
    also has ``phases``: seconds and sampled peaks (tree and largest process) of every phase,
    a phase running from the previous one's end line."""
    print(f"[bench] {label}: {' '.join(map(str, argv))}", flush=True)
    start = time.perf_counter()
    phases = {}
    with open(log, "a", encoding="utf-8") as out:
        offset = out.tell()
        process = subprocess.Popen([str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT)
        peak = {"tree": 0, "largest": 0}

        def sample():
            current = {"tree": 0, "largest": 0, "start": start}
            with open(log, encoding="utf-8", errors="replace") as output:
                output.seek(offset)
                while process.poll() is None:
                    tree, largest = tree_rss(process.pid)
                    for bucket in (peak, current):
                        bucket["tree"], bucket["largest"] = max(bucket["tree"], tree), max(bucket["largest"], largest)
                    for line in output.readlines() if phase_end else ():
                        ended = re.match(phase_end, line)
                        if ended:
                            now = time.perf_counter()
                            phases[ended.group(1)] = {"seconds": round(now - current["start"], 1),
                                                      "peak_tree_rss_gb": gb(current["tree"]),
                                                      "max_process_rss_gb": gb(current["largest"])}
                            current = {"tree": 0, "largest": 0, "start": now}
                    time.sleep(0.2)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        sampler.join()
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        sys.exit(f"[bench] {label} failed (exit {process.returncode}); see {log}")
    result = {"seconds": round(seconds, 1), "peak_tree_rss_gb": gb(peak["tree"]),
              "max_process_rss_gb": gb(usage.ru_maxrss * 1024)}
    if phase_end:
        result["phases"] = phases
    print(f"[bench] {label}: {result}", flush=True)
    return result


def petition(*args):
    return [Path(sys.executable).parent / "petition", *args]


def board(args):
    config = load_config()
    board_dir = PROJECT_ROOT.parent / "shared" / "corpora" / "messageboard"
    if not (board_dir / "messages.xlsx").exists():
        print(f"[bench] {board_dir}/messages.xlsx not found; board benchmark skipped")
        return
    work = Path(tempfile.mkdtemp(prefix="bench-dedupe-"))
    log = work / "log.txt"
    try:
        run, index = work / "run", work / "index"
        timed(petition("ingest", board_dir / "messages.xlsx", "--run", run, "--channel", "online"), "ingest", log)
        timed(petition("normalize", "--run", run), "normalize", log)
        timed(petition("segment", "--run", run, "--dict", board_dir / "place_words.txt"), "segment", log)
        dedupe = timed(petition("dedupe", "--run", run, "--index", index), "dedupe", log)
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
        links = pd.read_csv(run / "links.csv", encoding="utf-8-sig", dtype=str)
        results = {"corpus": str(board_dir / "messages.xlsx"), "letters": summary["letters (件次)"],
                   "unique_matters": summary["unique matters (纯件数)"],
                   "links_per_relation": links["relation"].value_counts().to_dict(),
                   "letters_per_relation": summary["letters by relation to an earlier letter"],
                   "dedupe": dedupe, "config_hash": summary["index"]["config_hash"],
                   "lsh": f"{config.dedupe.num_perm} perms, threshold {config.dedupe.lsh_threshold}"}
        save(results, args.out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def scale(args):
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-dedupe-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    env_note = {"PETITION_DATA_DIR": os.environ.get("PETITION_DATA_DIR", "(default)")}
    results = {"n": args.n, "increment": INCREMENT, "cpu_count": os.cpu_count(),
               "python": platform.python_version(), "work": str(work), "env": env_note, "stages": {}}
    stages = results["stages"]
    if args.segmented:
        segmented = Path(args.segmented)
        results["segmented"] = str(segmented)
    else:
        segmented = synthesize(args.n + INCREMENT, args.seed, work, stages, log)
    night, increment = work / "night", work / "increment"
    results["n"] = split_night(segmented, night, increment, args.n)
    index = work / "index"
    shutil.rmtree(index, ignore_errors=True)
    stages["dedupe"] = timed(petition("dedupe", "--run", night, "--index", index), f"dedupe {results['n']:,}", log)
    stages["dedupe"]["summary"] = json.loads((night / "summary.json").read_text(encoding="utf-8"))
    stages["increment"] = timed(petition("dedupe", "--run", increment, "--index", index),
                                f"increment {INCREMENT:,}", log)
    stages["increment"]["summary"] = json.loads((increment / "summary.json").read_text(encoding="utf-8"))
    results["reference"] = reference(night / "segmented.parquet")
    results["targets"] = TARGETS
    results["met"] = {
        "dedupe_seconds": stages["dedupe"]["seconds"] <= TARGETS["dedupe_seconds"],
        "dedupe_peak_gb": stages["dedupe"]["peak_tree_rss_gb"] <= TARGETS["dedupe_peak_gb"],
        "increment_seconds": stages["increment"]["seconds"] <= TARGETS["increment_seconds"],
    }
    save(results, args.out)


def synthesize(total, seed, work, stages, log):
    """Synthesize ``total`` letters and run ingest, normalize and segment on them (timed into
    ``stages``); returns the segmented Parquet file."""
    dump, run = work / "letters.parquet", work / "run"
    stages["synth"] = timed([sys.executable, "-m", "pipeline.synth", "--n", total, "--seed", seed,
                             "--out", dump, "--truth-dir", work / "truth"], f"synth {total:,} letters", log)
    stages["ingest"] = timed(petition("ingest", dump, "--run", run), "ingest", log)
    stages["normalize"] = timed(petition("normalize", "--run", run), "normalize", log)
    stages["segment"] = timed(petition("segment", "--run", run, "--no-cache"), "segment", log)
    return run / "segmented.parquet"


def split_night(segmented, night, increment, n=None):
    """Write the first ``n`` letters of ``segmented`` by date (default: all but the last
    INCREMENT) to ``night/segmented.parquet`` and the next INCREMENT letters, the next
    night's dump, to ``increment/``; rows keep their file order, read batch by batch.
    Returns the night's letter count."""
    days = pq.read_table(segmented, columns=["received_at"]).column(0).to_pandas()
    order = days.sort_values(kind="stable", na_position="first").index.to_numpy()
    n = len(order) - INCREMENT if n is None else min(n, len(order) - INCREMENT)
    part = np.full(len(order), -1)
    part[order[:n]], part[order[n:n + INCREMENT]] = 0, 1
    writers, start = [None, None], 0
    for batch in parquet_batches(segmented, 65536):
        for number, folder in enumerate((night, increment)):
            rows = np.flatnonzero(part[start:start + batch.num_rows] == number)
            if len(rows):
                folder.mkdir(parents=True, exist_ok=True)
                writers[number] = writers[number] or pq.ParquetWriter(folder / "segmented.parquet", batch.schema)
                writers[number].write_batch(batch.take(pa.array(rows)))
        start += batch.num_rows
    for writer in writers:
        if writer:
            writer.close()
    return n


def reference(segmented, n=REFERENCE_LETTERS):
    """datasketch MinHashLSH against this project's numpy MinHash LSH on ``n`` letters."""
    from datasketch import MinHash, MinHashLSH

    from pipeline.dedup.arrays import join_pairs
    from pipeline.dedup.features import comparison_texts
    from pipeline.dedup.minhash import MinHasher, band_keys, lsh_params

    c = load_config().dedupe
    clean = pd.read_parquet(segmented, columns=["clean_text"])["clean_text"].head(n).tolist()
    texts = [t[:c.compare_chars] for t in comparison_texts(clean, c.min_body_chars)]
    k = c.shingle_size
    print(f"[bench] reference: datasketch MinHashLSH on {len(texts):,} letters", flush=True)
    start = time.perf_counter()
    lsh = MinHashLSH(threshold=c.lsh_threshold, num_perm=c.num_perm)
    signatures = []
    for number, text in enumerate(texts):
        minhash = MinHash(num_perm=c.num_perm, seed=c.seed)
        minhash.update_batch([text[i:i + k].encode("utf-8") for i in range(max(len(text) - k + 1, 1))])
        lsh.insert(str(number), minhash)
        signatures.append(minhash)
    reference_pairs = sum(len(lsh.query(m)) - 1 for m in signatures) // 2
    reference_seconds = time.perf_counter() - start
    start = time.perf_counter()
    bands, rows = lsh_params(c.lsh_threshold, c.num_perm)
    keys = band_keys(MinHasher(c.num_perm, k, c.seed).signatures(texts), bands, rows)
    flat = keys.ravel().view("int64")
    first, second = join_pairs(flat, flat)
    a, b = first // bands, second // bands  # flat position -> letter
    ours_pairs = len(np.unique(a[a < b] * len(texts) + b[a < b]))  # the join lists both orders
    ours_seconds = time.perf_counter() - start
    result = {"letters": len(texts), "datasketch_seconds": round(reference_seconds, 1),
              "numpy_seconds": round(ours_seconds, 1), "ratio": round(reference_seconds / ours_seconds, 1),
              "datasketch_candidate_pairs": reference_pairs, "numpy_candidate_pairs": ours_pairs,
              "datasketch_bands_rows": [lsh.b, lsh.r],
              "numpy_bands_rows": [bands, rows]}
    print(f"[bench] reference: {result}", flush=True)
    return result


def save(results, out):
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    print(json.dumps(results, indent=2, ensure_ascii=False, default=str))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    board_parser = sub.add_parser("board", help="links per relation on messages.xlsx")
    board_parser.add_argument("--out", required=True)
    scale_parser = sub.add_parser("scale", help="N synthetic letters from an empty index, then an increment")
    scale_parser.add_argument("--n", type=int, help="letters deduped from an empty index (default: 1,000,000; "
                                                    "with --segmented, all but the last 10,000)")
    scale_parser.add_argument("--seed", type=int, default=11)
    scale_parser.add_argument("--work", help="working folder (default: a new temporary folder; kept)")
    scale_parser.add_argument("--segmented", help="an existing segmented.parquet to use instead of synthesizing")
    scale_parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.command == "scale" and args.n is None and not args.segmented:
        args.n = 1_000_000
    if args.command == "scale" and args.segmented and not Path(args.segmented).is_file():
        parser.error(f"--segmented {args.segmented}: no such file")
    if args.command == "scale" and args.segmented:
        try:
            columns = pq.read_schema(args.segmented).names
        except pa.ArrowException as exc:
            parser.error(f"--segmented {args.segmented}: not a readable Parquet file ({exc})")
        if "received_at" not in columns or "tokens" not in columns:
            parser.error(f"--segmented {args.segmented}: not a segment output (needs received_at and tokens)")
    {"board": board, "scale": scale}[args.command](args)


if __name__ == "__main__":
    main()
