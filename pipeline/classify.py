"""Classify: topic, confidence and attributes for every letter of a run.

Reads ``segmented.parquet`` and writes ``classified.parquet`` with, per letter:

* ``topic`` (most probable code), ``topic_confidence`` (its calibrated probability),
  ``topics`` (``|``-joined: the topic, then every other label over its threshold from the
  model card), ``top3`` (JSON ``[[code, probability], ...]``), ``needs_review`` (confidence
  under the card's review threshold) and ``responsible_body`` (from the card's taxonomy);
* the attributes of ``pipeline.attributes`` (rules in ``corpora/attributes.yaml``). When the
  model directory holds a ``nature/`` model (trained on nature labels), its answer replaces
  the rule's wherever its confidence reaches that model's review threshold.

The model reads ``clean_text`` and segments it itself, with the dictionaries it was trained
with: the run's ``tokens`` may come from other dictionaries (``segment --dict``), and words the
model never saw would be lost on it. The topic and nature models clean and segment each
letter once between them when their text steps are alike (``textmodel.predict_probas``).
"""
import json
from pathlib import Path

import numpy as np

from pipeline import schema, textmodel
from pipeline.attributes import AttributeRules, letter_attributes
from pipeline.config import PROJECT_ROOT
from pipeline.errors import PetitionError

NATURE_MODEL = "nature"


def topic_columns(proba, card):
    """The topic columns from probabilities (n_letters, n_labels) in the card's label order."""
    labels = card["labels"]
    if proba.shape[1] != len(labels):
        raise PetitionError(f"model and card disagree: {proba.shape[1]} outputs, {len(labels)} labels in the card")
    best = proba.argmax(axis=1) if len(proba) else np.zeros(0, dtype=int)
    confidence = proba[np.arange(len(proba)), best]
    top3 = np.argsort(-proba, axis=1)[:, :3]
    bodies = {label: card["taxonomy"].get(label, {}).get("responsible_body", "") for label in labels}
    return {
        schema.TOPIC: [labels[j] for j in best],
        schema.TOPIC_CONFIDENCE: np.round(confidence, 4),
        schema.TOPICS: ["|".join(s) for s in textmodel.topic_sets(proba, labels, card["topic_thresholds"])],
        schema.TOP3: [json.dumps([[labels[j], round(float(p[j]), 4)] for j in row], ensure_ascii=False)
                      for row, p in zip(top3, proba)],
        schema.NEEDS_REVIEW: confidence < card["review"]["threshold"],
        schema.RESPONSIBLE_BODY: [bodies[labels[j]] for j in best],
    }


def classify_letters(letters, model, card, rules, nature=None, processes=1, chunk_size=1000, progress=None):
    """Add the topic and attribute columns to ``letters`` (the segment output).

    Parameters
    ----------
    model, card : a topic model and its card (``textmodel.load_model``)
    rules : AttributeRules
    nature : (model, card), optional
        A nature model whose confident answers replace the rules'.
    processes, chunk_size : parallel prediction
    progress : callable, optional
        Called with the number of letters done.
    """
    texts = letters[schema.CLEAN_TEXT].tolist()
    models = [model, nature[0]] if nature else [model]
    probas = textmodel.predict_probas(models, texts, processes, chunk_size, progress)
    out = letters.assign(**topic_columns(probas[0], card))
    attributes = letter_attributes(letters, rules)
    if nature:
        nature_proba, nature_card = probas[1], nature[1]
        confident = nature_proba.max(axis=1) >= nature_card["review"]["threshold"]
        predicted = np.array(nature_card["labels"], dtype=object)[nature_proba.argmax(axis=1)]
        attributes[schema.NATURE] = np.where(confident, predicted, attributes[schema.NATURE])
    return out.assign(**{column: attributes[column] for column in attributes.columns})


def load_nature_model(model_dir):
    """The ``nature/`` model inside a model directory, or None when there is none."""
    folder = Path(model_dir) / NATURE_MODEL
    return textmodel.load_model(folder) if folder.is_dir() else None


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "classify", help="topic, confidence and attributes (nature, 涉法涉诉, anonymous, joint, collective, 越级)",
        description="Read segmented.parquet, write classified.parquet.")
    parser.add_argument("--run", required=True, help="run directory")
    parser.add_argument("--model", metavar="DIR", help="model directory (default: classify.model_dir)")
    parser.add_argument("--processes", type=int, help="worker processes (default: configuration)")
    parser.set_defaults(func=run_cli)


def run_cli(args, config):
    from tqdm import tqdm

    from pipeline.rundir import RunDir, stage

    settings = config.classify
    processes = args.processes or settings.processes
    if processes < 1:
        raise PetitionError(f"--processes must be at least 1, got {processes}")
    model_dir = Path(args.model) if args.model else PROJECT_ROOT / settings.model_dir
    model, card = textmodel.load_model(model_dir)
    nature = load_nature_model(model_dir)
    rules = AttributeRules.load(PROJECT_ROOT / settings.attributes)
    run = RunDir(args.run)
    letters = run.read("segment")
    with stage(run, "classify") as result, \
            tqdm(total=len(letters), desc="classify", unit="letter", disable=None) as bar:
        classified = classify_letters(letters, model, card, rules, nature, processes, settings.chunk_size,
                                      progress=bar.update)
        run.write("classify", classified)
        run.set_quarantine("classify", [])
        result.rows_in = result.rows_out = len(letters)
        result.notes = {"model": f"{model_dir} (trained {card.get('created')}, {card['data']['rows']} letters)",
                        "nature": "model + rules" if nature else "rules",
                        "needs review": int(classified[schema.NEEDS_REVIEW].sum()),
                        "topics": classified[schema.TOPIC].value_counts().head(10).to_dict()}
