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

from tqdm import tqdm

from pipeline import textmodel
from pipeline.confusion import write_confusion
from pipeline.errors import PetitionError
from pipeline.train import check_labels, read_labelled, train_model


def evaluate_model(model, card, texts, label_sets, processes=1, chunk_size=1000):
    """Metrics of a fitted model (with its card) on labelled texts; labels the model does not
    know count as errors."""
    labels = card["labels"]
    proba = textmodel.predict_proba(model, texts, processes, chunk_size)
    if card["multilabel"]:
        predicted = textmodel.topic_sets(proba, labels, card["topic_thresholds"])
    else:
        predicted = [[labels[j]] for j in proba.argmax(axis=1)]
    unknown = sorted({label for s in label_sets for label in s} - set(labels))
    return textmodel.classification_metrics(label_sets, predicted, labels + unknown) | {
        "labels_unknown_to_model": unknown}


def format_metrics(metrics):
    """Plain-text table of the metrics."""
    lines = [f"rows {metrics['rows']}  accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}",
             f"{'label':<28}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    lines += [f"{label:<28}{m['precision']:>10.4f}{m['recall']:>10.4f}{m['f1']:>10.4f}{m['support']:>9}"
              for label, m in metrics["per_label"].items()]
    return "\n".join(lines)


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "evaluate", help="metrics of a model on a labelled file, or cross-validated",
        description="Accuracy, macro-F1, per-label precision/recall/F1 and the confusion matrix.")
    parser.add_argument("--data", required=True, help="labelled file (CSV, XLSX or JSONL)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="DIR", help="saved model to evaluate")
    source.add_argument("--cv", type=int, metavar="K", help="cross-validate the configured model in K folds")
    parser.add_argument("--text-col", action="append", metavar="C",
                        help="text column (repeatable; default: the model's, else 'text')")
    parser.add_argument("--label-col", metavar="L", help="label column (default: the model's, else 'label')")
    parser.add_argument("--label-sep", metavar="S", help="separator of several labels per cell")
    parser.add_argument("--labels", metavar="FILE", help="table holding the label column, joined on the letter id")
    parser.add_argument("--out", default="evaluation", metavar="DIR",
                        help="folder for confusion.csv and confusion.png (default: evaluation)")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    parser.set_defaults(func=run_cli)


def run_cli(args, config):
    settings = config.classify
    model = card = None
    if args.model:
        model, card = textmodel.load_model(args.model)
    elif args.cv < 2:
        raise PetitionError(f"--cv needs at least 2 folds, got {args.cv}")
    trained = (card or {}).get("data", {})
    text_cols = args.text_col or trained.get("text_columns") or ["text"]
    label_col = args.label_col or trained.get("label_column") or "label"
    label_sep = args.label_sep or trained.get("label_separator")
    texts, label_sets, notes = read_labelled(args.data, text_cols, label_col, label_sep, args.labels)
    for note in notes:
        print(f"evaluate: {note}", file=sys.stderr)
    if model is not None:
        metrics = {"model": str(args.model)} | evaluate_model(model, card, texts, label_sets,
                                                              settings.processes, settings.chunk_size)
    else:
        label_sets, _ = check_labels(label_sets)
        with tqdm(total=args.cv, desc="cross-validate", unit="fold", disable=None) as bar:
            _, summary = train_model(texts, label_sets, dataclasses.replace(settings, cv_folds=args.cv),
                                     textmodel.LetterText.from_config(config), bool(label_sep),
                                     settings.processes, final_fit=False, progress=bar.update)
        metrics = {"model": "configured (cross-validated)"} | summary["cross_validation"]
    metrics["data"] = str(args.data)
    metrics["outputs"] = list(map(str, write_confusion(metrics["confusion"], Path(args.out) / "confusion")))
    if args.json:
        print(json.dumps(metrics, ensure_ascii=False))
    else:
        print(format_metrics(metrics))
        print(f"confusion matrix: {', '.join(metrics['outputs'])}")
