"""Segmentation throughput on the bundled sample against plain ``jieba.lcut`` (HMM on, one
process) measured in the same run: characters per second of the Segmenter with 1 and 2
processes, and of ``petition segment --no-cache`` (start-up included) on eight copies of the
sample's cleaned letters. The target is 10× the reference, with 2 processes and through the CLI.

Usage: python benchmarks/bench_segment.py --out bench/segment.json [--repeat 3]
"""
import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jieba
import pandas as pd

from pipeline import ingest, normalize, schema
from pipeline.config import load_config
from pipeline.segment import Segmenter, segment_texts

jieba.setLogLevel(logging.WARNING)
TARGET_RATIO = 10
COPIES = 8


def sample_letters(config):
    """The sample's letters as normalize writes them (DataFrame)."""
    letters, *_ = ingest.ingest([config.paths.sample_dump], config)
    cleaner = normalize.TextCleaner.from_config(config)
    keys = normalize.PetitionerKeys(b"bench", cleaner)
    return normalize.normalize(letters, cleaner, keys)[0]


def best_seconds(func, repeat):
    """Wall seconds of the fastest of ``repeat`` runs of ``func()``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def copies(letters, n):
    """``n`` copies of ``letters``, each text marked with its copy number: segment cuts a text
    once per run, so identical copies would be cut only once."""
    frames = []
    for i in range(n):
        copy = letters.copy()
        copy[schema.LETTER_ID] = copy[schema.LETTER_ID] + f"-{i}"
        copy[schema.CLEAN_TEXT] = f"第{i}份 " + copy[schema.CLEAN_TEXT]
        frames.append(copy)
    return pd.concat(frames, ignore_index=True)


def cli_seconds(letters, repeat):
    """Best wall seconds of ``petition segment --no-cache`` over ``letters`` in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="bench-segment-") as run:
        letters.to_parquet(Path(run) / "normalized.parquet", index=False)
        command = [sys.executable, "-m", "pipeline", "segment", "--run", run, "--no-cache"]
        return best_seconds(lambda: subprocess.run(command, check=True, capture_output=True, env=os.environ), repeat)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    config = load_config()
    letters = sample_letters(config)
    texts = letters[schema.CLEAN_TEXT].tolist()
    characters = sum(map(len, texts))
    segmenter = Segmenter.from_config(config).load()  # dictionaries loaded before timing, as in a worker
    plain = jieba.Tokenizer()
    plain.tmp_dir = str(config.paths.data_dir / "jieba")
    plain.initialize()
    reference = characters / best_seconds(lambda: [plain.lcut(t) for t in texts], args.repeat)
    many = copies(letters, COPIES)
    many_characters = int(many[schema.CLEAN_TEXT].str.len().sum())
    results = {
        "letters": len(texts), "characters": characters, "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "reference_plain_jieba_hmm_1proc_chars_per_s": reference,
        "pipeline_1proc_chars_per_s": characters / best_seconds(
            lambda: segment_texts(texts, segmenter, processes=1), args.repeat),
        "pipeline_2proc_chars_per_s": characters / best_seconds(
            lambda: segment_texts(texts, segmenter, processes=2, chunk_size=config.segment.chunk_size),
            args.repeat),
        "cli_letters": len(many), "cli_characters": many_characters,
        "cli_chars_per_s": many_characters / cli_seconds(many, args.repeat),
        "target_ratio_vs_reference": TARGET_RATIO,
    }
    for name in ("pipeline_1proc", "pipeline_2proc", "cli"):
        results[f"ratio_{name}_vs_reference"] = results[f"{name}_chars_per_s"] / reference
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2), encoding="utf-8")
    for key, value in results.items():
        print(f"{key}: {value:,.2f}" if isinstance(value, float) else f"{key}: {value}")


if __name__ == "__main__":
    main()
