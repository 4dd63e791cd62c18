"""Evaluate: metrics of a saved model on a labelled file, or cross-validated metrics of the
configured model on it.

``petition evaluate --model DIR --data FILE ...`` classifies the file with the model;
``petition evaluate --data FILE --cv 5 ...`` trains and tests the configured model fold by
fold. Both print accuracy, macro-F1 and per-label precision/recall/F1 (``--json``: one JSON
object on stdout) and write the confusion matrix as CSV and PNG (``--out``).
"""
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.classifier import textmodel
from pipeline.classifier.confusion import write_confusion
from pipeline.classifier.taxonomy import LEVEL_SEP, level_label, level_sets
from pipeline.errors import PetitionError
from pipeline.train import check_labels, read_labelled, train_model


def evaluate_model(model, card, texts, label_sets, level=1, processes=1, chunk_size=1000):
    """Metrics of a fitted model (with its card) on labelled texts at ``level`` (1 or 2, see
    ``textmodel.level_metrics``); labels the model does not know count as errors.

    Also ``review``: the share of letters ``needs_review`` flags (confidence under the card's
    review threshold) and the share of the wrong answers among them (``errors_flagged``), wrong
    meaning, at level 1, a first-level class outside the truth's.
    """
    labels = card["labels"]
    proba = textmodel.predict_proba(model, texts, processes, chunk_size)
    order = textmodel.ranked(proba, labels)
    if card["multilabel"]:
        predicted = textmodel.topic_sets(proba, labels, card["topic_thresholds"])
    else:
        predicted = [[labels[j]] for j in order[:, 0]]
    metrics = textmodel.level_metrics(label_sets, predicted, level, labels)
    if not metrics["rows"]:
        raise PetitionError("no letter of the file has a second-level label (一级/二级) to score at level 2; "
                            "use --level 1")
    scored = [i for i, truth in enumerate(label_sets) if level == 1 or any(LEVEL_SEP in t for t in truth)]
    answers, truth_sets = order[scored, 0], level_sets([label_sets[i] for i in scored], level)
    wrong = np.array([level_label(labels[j], level) not in truth for j, truth in zip(answers, truth_sets)])
    flagged = proba[scored, answers] < card["review"]["threshold"]
    return metrics | {
        "labels_unknown_to_model": sorted({label for truth in truth_sets for label in truth}
                                          - {level_label(label, level) for label in labels}),
        "review": {"threshold": card["review"]["threshold"], "letters_flagged": round(float(flagged.mean()), 4),
                   "errors": int(wrong.sum()),
                   "errors_flagged": round(float(flagged[wrong].mean()), 4) if wrong.any() else None}}


def format_metrics(metrics):
    """Plain-text table of the metrics."""
    lines = [f"level {metrics['level']}  rows {metrics['rows']}  accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}",
             f"{'label':<28}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    lines += [f"{label:<28}{m['precision']:>10.4f}{m['recall']:>10.4f}{m['f1']:>10.4f}{m['support']:>9}"
              for label, m in metrics["per_label"].items()]
    return "\n".join(lines)


def evaluate_command(config, *, data, model=None, cv=None, text_cols=None, label_col=None, label_sep=None,
                     labels=None, out="evaluation", as_json=False, level=1):
    """Print the metrics of a saved model on a labelled file, or of the configured model
    cross-validated in ``cv`` folds, and write the confusion matrix.

    Parameters
    ----------
    config : Config
    data, labels : path
        Labelled file, and optionally a table holding the labels (see ``train.read_labelled``).
    model : path, optional
        Saved model directory; without it, ``cv`` (at least 2) folds of the configured model.
    text_cols, label_col, label_sep : optional
        Default: the model's, else ``["text"]``, ``"label"`` and none.
    out : path
        Folder for ``confusion.csv`` and ``confusion.png``.
    as_json : bool
        Print the metrics as one JSON object instead of a table.
    level : int
        1: first-level classes (every label cut to its first level); 2: whole labels, on the
        letters labelled with a second-level class.
    """
    settings = config.classify
    fitted = card = None
    if model:
        fitted, card = textmodel.load_model(model)
    elif cv is None or cv < 2:
        raise PetitionError(f"--cv needs at least 2 folds, got {cv}")
    trained = (card or {}).get("data", {})
    text_cols = text_cols or trained.get("text_columns") or ["text"]
    label_col = label_col or trained.get("label_column") or "label"
    label_sep = label_sep or trained.get("label_separator")
    texts, label_sets, notes = read_labelled(data, text_cols, label_col, label_sep, labels)
    for note in notes:
        print(f"evaluate: {note}", file=sys.stderr)
    if fitted is not None:
        metrics = {"model": str(model)} | evaluate_model(fitted, card, texts, label_sets, level,
                                                         settings.processes, settings.chunk_size)
    else:
        label_sets, _ = check_labels(label_sets)
        with tqdm(total=cv, desc="cross-validate", unit="fold", disable=None) as bar:
            _, summary = train_model(texts, label_sets, dataclasses.replace(settings, cv_folds=cv),
                                     textmodel.LetterText.from_config(config), bool(label_sep),
                                     settings.processes, final_fit=False, progress=bar.update)
        key = "cross_validation" if level == 1 else "cross_validation_level2"
        if key not in summary:
            raise PetitionError(f"{data}: no letter has a second-level label (一级/二级) to score at level 2; "
                                "use --level 1")
        metrics = {"model": "configured (cross-validated)"} | summary[key]
    metrics["data"] = str(data)
    metrics["outputs"] = list(map(str, write_confusion(metrics["confusion"], Path(out) / "confusion")))
    if as_json:
        print(json.dumps(metrics, ensure_ascii=False))
    else:
        print(format_metrics(metrics))
        print(f"confusion matrix: {', '.join(metrics['outputs'])}")
