"""Segmentation throughput on the bundled sample: characters per second with 1 and 2
processes, against plain ``jieba.lcut`` (HMM on, one process) measured in the same run.

Usage: python benchmarks/bench_segment.py --out bench/segment.json [--repeat 3]
"""
import argparse
import json
import platform
import time
from pathlib import Path

import jieba

from pipeline import ingest, normalize
from pipeline.config import load_config
from pipeline.segment import Segmenter, segment_texts


def sample_texts(config):
    letters, *_ = ingest.ingest([config.paths.sample_dump], config)
    cleaner = normalize.TextCleaner.from_config(config)
    keys = normalize.PetitionerKeys(b"bench", cleaner)
    return normalize.normalize(letters, cleaner, keys)[0]["clean_text"].tolist()


def best_rate(func, characters, repeat):
    """Characters per second of the fastest of ``repeat`` runs of ``func()``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return characters / best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    config = load_config()
    texts = sample_texts(config)
    characters = sum(map(len, texts))
    segmenter = Segmenter.from_config(config)
    segmenter.cut("")  # dictionaries loaded before timing, as in a worker
    plain = jieba.Tokenizer()
    plain.tmp_dir = str(config.paths.data_dir / "jieba")
    plain.initialize()
    results = {
        "letters": len(texts), "characters": characters, "cpu_count": __import__("os").cpu_count(),
        "python": platform.python_version(),
        "reference_plain_jieba_hmm_1proc_chars_per_s": best_rate(
            lambda: [plain.lcut(t) for t in texts], characters, args.repeat),
        "pipeline_1proc_chars_per_s": best_rate(
            lambda: segment_texts(texts, segmenter, processes=1), characters, args.repeat),
        "pipeline_2proc_chars_per_s": best_rate(
            lambda: segment_texts(texts, segmenter, processes=2, chunk_size=config.segment.chunk_size),
            characters, args.repeat),
        "target_2proc_chars_per_s": 700_000,
    }
    reference = results["reference_plain_jieba_hmm_1proc_chars_per_s"]
    results["ratio_2proc_vs_reference"] = results["pipeline_2proc_chars_per_s"] / reference
    results["ratio_1proc_vs_reference"] = results["pipeline_1proc_chars_per_s"] / reference
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2), encoding="utf-8")
    for key, value in results.items():
        print(f"{key}: {value:,.2f}" if isinstance(value, float) else f"{key}: {value}")


if __name__ == "__main__":
    main()
