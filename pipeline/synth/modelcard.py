"""Mark a model card as trained on generated letters.

    python -m pipeline.synth.modelcard models/default --generator "python -m pipeline.synth --training ..."

Adds ``trained_on: generated``, the command that generated the corpus and how to train on an
office's own archive to ``model_card.json``: `pipeline.classify` then says so in its notes,
``nightly`` prints it and the report carries a line about it. A model trained on an office's
archive carries no such flag.
"""
import argparse
import json
import sys
from pathlib import Path

from pipeline.rundir import write_json

OWN_ARCHIVE = ("petition train --data ARCHIVE.xlsx --text-col 标题 --text-col 内容 --label-col 类别 "
               "--label-sep '|' --model models/office, then classify.model_dir: ../models/office "
               "(README: petition train, evaluate, classify)")


def mark_generated(model_dir, generator):
    """Add the generated-letters flag to ``model_dir``'s card; ``generator`` is the command that
    wrote the training letters. Returns the card."""
    path = Path(model_dir) / "model_card.json"
    card = json.loads(path.read_text(encoding="utf-8"))
    card |= {"trained_on": "generated", "generator": generator, "train_on_own_archive": OWN_ARCHIVE}
    write_json(card, path)
    return card


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pipeline.synth.modelcard", description=__doc__.split("\n")[0])
    parser.add_argument("model", help="model directory (holding model_card.json)")
    parser.add_argument("--generator", required=True, help="the command that generated the training letters")
    args = parser.parse_args(argv)
    mark_generated(args.model, args.generator)
    print(f"{args.model}: model card marked as trained on generated letters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
