"""Apply a topic model, an optional nature model and the attribute rules to letters.

``classify_letters`` takes the segment output and returns it with the topic columns
(``topic_columns``) and the attribute columns (``attributes.letter_attributes``) added. When the
model directory holds a ``nature/`` model (trained on nature labels), its answer replaces the
rule's wherever its confidence reaches that model's review threshold.

The models read ``clean_text`` and segment it themselves, with the dictionaries they were
trained with: a run's ``tokens`` may come from other dictionaries (``segment --dict``), and words
a model never saw would be lost on it. The topic and nature models clean and segment each letter
once between them when their text steps are alike (``textmodel.predict_probas``).
"""
import json
from pathlib import Path

import numpy as np

from pipeline import schema
from pipeline.classifier import textmodel
from pipeline.classifier.attributes import letter_attributes
from pipeline.errors import PetitionError

NATURE_MODEL = "nature"


def load_nature_model(model_dir):
    """The ``(model, card)`` of the ``nature/`` model inside a model directory, or None when
    there is none."""
    folder = Path(model_dir) / NATURE_MODEL
    return textmodel.load_model(folder) if folder.is_dir() else None


def topic_columns(proba, card):
    """The topic columns from probabilities (n_letters, n_labels) in the card's label order:
    {column: values}, one value per letter."""
    labels = card["labels"]
    if proba.shape[1] != len(labels):
        raise PetitionError(f"model and card disagree: {proba.shape[1]} outputs, {len(labels)} labels in the card")
    order = textmodel.ranked(proba, labels)  # the answer first: the best leaf under the best first level
    best, top3 = order[:, 0], order[:, :3]
    confidence = proba[np.arange(len(proba)), best]
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


def classify_letters(letters, model, card, rules, nature=None, processes=1, chunk_size=1000, progress=None,
                     normalized=None):
    """Return ``letters`` (the segment output) with the topic and attribute columns added.

    Parameters
    ----------
    model, card : a topic model and its card (``textmodel.load_model``)
    rules : AttributeRules
    nature : (model, card), optional
        A nature model whose confident answers replace the rules'.
    processes, chunk_size : parallel prediction
    progress : callable, optional
        Called with the number of letters done.
    normalized : config.NormalizeConfig, optional
        The settings ``clean_text`` was cleaned with: models that clean alike skip cleaning
        it again (``textmodel.predict_probas``).
    """
    texts = letters[schema.CLEAN_TEXT].tolist()
    models = [model, nature[0]] if nature else [model]
    probas = textmodel.predict_probas(models, texts, processes, chunk_size, progress, normalized)
    out = letters.assign(**topic_columns(probas[0], card))
    attributes = letter_attributes(letters, rules, processes, chunk_size)
    if nature:
        nature_proba, nature_card = probas[1], nature[1]
        confident = nature_proba.max(axis=1) >= nature_card["review"]["threshold"]
        predicted = np.array(nature_card["labels"], dtype=object)[nature_proba.argmax(axis=1)]
        attributes[schema.NATURE] = np.where(confident, predicted, attributes[schema.NATURE])
    return out.assign(**{column: attributes[column] for column in attributes.columns})
