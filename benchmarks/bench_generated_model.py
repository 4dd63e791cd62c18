"""The default model, trained on generated letters, on the real message board.

Scores a saved topic model (default ``models/default``) on the 1,838 labelled board letters of
``../shared/corpora/messageboard/labeled.csv`` at the first level of the national
classification: a predicted label ``城乡建设/物业服务`` counts as ``城乡建设``, and macro-F1 is
taken over the board's seven labels. Letters the model files under a class the board does not
use count as errors of their true class.

Then ``needs_review``: for the model card's review threshold, the configured
``classify.generated_review_threshold`` and a grid of thresholds, the share of letters flagged and the
share of the model's wrong answers among them; ``suggested`` is the lowest threshold that flags
at least ``--catch`` of the wrong answers (the figure behind ``classify.generated_review_threshold``).
Figures are given for the whole file and for its two halves (even and odd rows), so that a
threshold chosen on one half can be read on the other.

Usage: python benchmarks/bench_generated_model.py --out bench/generated_model.json
           [--model models/default] [--data labeled.csv] [--catch 0.8]
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from pipeline.classifier import textmodel
from pipeline.config import PROJECT_ROOT, load_config
from pipeline.train import read_labelled

BOARD = PROJECT_ROOT.parent / "shared" / "corpora" / "messageboard"
GRID = tuple(round(x, 2) for x in np.arange(0.30, 0.96, 0.05))


def level1(label):
    """The first-level class of a label (``城乡建设/物业服务`` -> ``城乡建设``)."""
    return label.split("/", 1)[0]


def first_level_answers(proba, labels):
    """Per letter: the first-level class with the most probability (summed over its second-level
    labels) and the pipeline's confidence (the top label's probability, as ``topic_columns``)."""
    classes = sorted({level1(label) for label in labels})
    members = np.array([[level1(label) == c for label in labels] for c in classes], dtype=float)
    by_class = proba @ members.T
    return np.array(classes, dtype=object)[by_class.argmax(axis=1)], proba.max(axis=1)


def scores(truth, predicted):
    """Accuracy, macro-F1 over the labels of ``truth``, F1 per label."""
    labels = sorted(set(truth))
    per_label = f1_score(truth, predicted, labels=labels, average=None, zero_division=0)
    return {"letters": len(truth), "accuracy": round(float(np.mean(truth == predicted)), 4),
            "macro_f1": round(float(per_label.mean()), 4),
            "f1": {label: round(float(f), 4) for label, f in zip(labels, per_label)},
            "outside_board_labels": round(float(np.mean(~np.isin(predicted, labels))), 4)}


def review(confidence, wrong, threshold):
    """Share of letters under ``threshold`` (flagged) and share of the wrong answers flagged."""
    flagged = confidence < threshold
    return {"threshold": round(float(threshold), 4), "flagged": round(float(flagged.mean()), 4),
            "errors_flagged": round(float(flagged[wrong].mean()), 4) if wrong.any() else None,
            "accuracy_unflagged": round(float(1 - wrong[~flagged].mean()), 4) if (~flagged).any() else None}


def suggest(confidence, wrong, catch):
    """The lowest threshold of ``GRID`` flagging at least ``catch`` of the wrong answers."""
    for threshold in GRID:
        if (confidence[wrong] < threshold).mean() >= catch:
            return review(confidence, wrong, threshold)
    return review(confidence, wrong, GRID[-1])


def evaluate(model_dir, data, catch, config):
    model, card = textmodel.load_model(model_dir)
    texts, label_sets, _ = read_labelled(data, ["text"], "label")
    truth = np.array([level1(s[0]) for s in label_sets], dtype=object)
    start = time.perf_counter()
    proba = textmodel.predict_proba(model, texts, config.classify.processes, config.classify.chunk_size)
    seconds = time.perf_counter() - start
    predicted, confidence = first_level_answers(proba, card["labels"])
    wrong = predicted != truth
    halves = {"even_rows": np.arange(len(truth)) % 2 == 0, "odd_rows": np.arange(len(truth)) % 2 == 1}
    configured = config.classify.generated_review_threshold if card.get("trained_on") == "generated" else 0
    thresholds = {"model_card": card["review"]["threshold"], "configured": configured or card["review"]["threshold"]}
    return {
        "model": str(model_dir), "trained_on": card.get("trained_on", "unknown"),
        "model_rows": card["data"]["rows"], "model_labels": len(card["labels"]), "data": str(data),
        "letters_per_second": round(len(texts) / seconds),
        "level1": scores(truth, predicted) | {half: scores(truth[rows], predicted[rows])["macro_f1"]
                                              for half, rows in halves.items()},
        "review": {name: review(confidence, wrong, t) for name, t in thresholds.items()}
                  | {"suggested": suggest(confidence, wrong, catch), "catch_target": catch,
                     "suggested_by_half": {half: suggest(confidence[rows], wrong[rows], catch)
                                           for half, rows in halves.items()},
                     "grid": [review(confidence, wrong, t) for t in GRID]},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="JSON file for the figures")
    parser.add_argument("--model", default=str(PROJECT_ROOT / "models" / "default"))
    parser.add_argument("--data", default=str(BOARD / "labeled.csv"))
    parser.add_argument("--catch", type=float, default=0.8, help="share of wrong answers to flag")
    args = parser.parse_args(argv)
    if not Path(args.data).exists():
        print(f"skipped: {args.data} is absent (the real board letters are needed)")
        return 0
    figures = evaluate(args.model, args.data, args.catch, load_config())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, ensure_ascii=False, indent=1), encoding="utf-8")
    level, chosen = figures["level1"], figures["review"]
    print(f"level-1 macro-F1 {level['macro_f1']} (even rows {level['even_rows']}, odd rows {level['odd_rows']}), "
          f"accuracy {level['accuracy']}, outside the board's labels {level['outside_board_labels']}")
    for name in ("model_card", "configured", "suggested"):
        r = chosen[name]
        print(f"review below {r['threshold']} ({name}): flags {r['flagged']:.0%} of letters, "
              f"{r['errors_flagged']:.0%} of wrong answers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
