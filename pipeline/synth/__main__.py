"""Synthetic petition letters (信访件) with planted repeats, for tests, benchmarks and demos.

    python -m pipeline.synth --n 5000 --seed 20241 --out corpora/sample/letters.csv
    python -m pipeline.synth --training --n 40000 --seed 13 --out .data/training/letters.csv

Writes an office-register style letters file (Chinese headers, mapped by ``schema.ALIASES``)
and two truth files next to it (or into ``--truth-dir``): ``truth_letters.csv`` and
``truth_pairs.csv``, then prints the planted counts. The same seed always gives
byte-identical files. ``--training`` draws from every first-level class of the national
classification (the topics of ``corpora/synth/training.yaml`` besides the sample's): the
corpus ``make train`` trains the default model on.
"""
import argparse
import sys
import time
from pathlib import Path

from pipeline.synth.output import generate
from pipeline.synth.settings import MALFORMED, PATTERNS, RELATIONS
from pipeline.synth.world import load_world


def main(argv=None):
    """Command line: ``python -m pipeline.synth --n N --seed S --out PATH [--truth-dir DIR]
    [--training]``."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.synth", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, required=True, help="number of letters")
    parser.add_argument("--seed", type=int, required=True, help="random seed")
    parser.add_argument("--out", required=True, help="letters file (.csv or .parquet)")
    parser.add_argument("--truth-dir", help="folder for the truth files (default: --out's folder)")
    parser.add_argument("--training", action="store_true",
                        help="a training corpus: every class of the national classification "
                             "(corpora/synth/training.yaml), not only the sample's topics")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be positive")
    if Path(args.out).suffix.lower() not in (".csv", ".parquet"):
        parser.error("--out must end in .csv or .parquet")
    started = time.perf_counter()
    summary = generate(args.n, args.seed, args.out, args.truth_dir,
                       world=load_world(training=args.training))
    truth_dir = Path(args.truth_dir) if args.truth_dir else Path(args.out).parent
    print(f"wrote {summary['letters']} letters to {args.out}")
    print(f"wrote truth_letters.csv and truth_pairs.csv ({summary['pairs']} pairs) to {truth_dir}")
    keys = ([f"pattern {p}" for p in PATTERNS] + [f"malformed {m}" for m in MALFORMED[1:]]
            + ["anonymous", "joint letters", "collective visits (5+)", "two topics",
               "traditional", "identifiers in text", "skip level"])
    for key in keys:
        print(f"  {key:28s} {summary[key]:8d}  {100 * summary[key] / summary['letters']:5.1f}%")
    for name in RELATIONS:
        print(f"  pairs {name:22s} {summary['relation ' + name]:8d}")
    print(f"{time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
