"""The ``petition`` command: one subcommand per stage.

Each stage module provides ``add_parser(subparsers)``, which registers its subcommand and
sets ``func(args, config)``. Errors meant for users (``PetitionError``) are printed as one
line and exit with status 2; anything else is a bug and keeps its traceback.
"""
import argparse
import sys

from pipeline import __version__, classify, dedupe, evaluate, ingest, nightly, normalize, report, segment, train
from pipeline.config import load_config
from pipeline.errors import PetitionError

STAGES = (ingest, normalize, segment, classify, dedupe, nightly, report, train, evaluate)


def build_parser():
    parser = argparse.ArgumentParser(prog="petition", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="configuration YAML (default: corpora/config.yaml)")
    parser.add_argument("--version", action="version", version=f"petition {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in STAGES:
        module.add_parser(subparsers)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args, load_config(args.config)) or 0
    except PetitionError as exc:
        print(f"petition {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"petition {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
