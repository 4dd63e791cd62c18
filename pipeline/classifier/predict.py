"""Apply a topic model, an optional nature model and the attribute rules to letters.

``classify_letters`` takes the segment output and returns it with the topic columns
(``topic_columns``) and the attribute columns (``attributes``) added, computed a chunk of letters
at a time in forked workers: models and rules in one pass. When the model directory holds a
``nature/`` model (trained on nature labels), its answer replaces the rule's wherever its
confidence reaches that model's review threshold.

The models read ``clean_text`` and segment it themselves, with the dictionaries they were
trained with: a run's ``tokens`` may come from other dictionaries (``segment --dict``), and words
a model never saw would be lost on it. The topic and nature models clean and segment each letter
once between them when their text steps are alike (``textmodel.proba_task``).
"""
import json
from pathlib import Path

import numpy as np

from pipeline import parallel, schema
from pipeline.classifier import textmodel
from pipeline.classifier.attributes import attribute_frame, attribute_records, record_attributes
from pipeline.errors import PetitionError

NATURE_MODEL = "nature"
TOPIC_COLUMNS = [schema.TOPIC, schema.TOPIC_CONFIDENCE, schema.TOPICS, schema.TOP3, schema.NEEDS_REVIEW,
                 schema.RESPONSIBLE_BODY]


def load_nature_model(model_dir):
    """The ``(model, card)`` of the ``nature/`` model inside a model directory, or None when
    there is none."""
    folder = Path(model_dir) / NATURE_MODEL
    return textmodel.load_model(folder) if folder.is_dir() else None


def topic_columns(proba, card):
    """The topic columns from probabilities (n_letters, n_labels) in the card's label order:
    {column: values} in ``TOPIC_COLUMNS`` order, one value per letter."""
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
        schema.TOPICS: ["|".join(s) for s in textmodel.topic_sets(proba, labels, card["topic_thresholds"], order)],
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
        it again (``textmodel.proba_task``).
    """
    probas_of = textmodel.proba_task([model, nature[0]] if nature else [model], normalized)

    def classify_chunk(records):
        """Per letter of ``records`` (``attributes.INPUTS``): its ``TOPIC_COLUMNS``, then its attributes."""
        probas = probas_of([record[0] for record in records])
        # the rules' nature only where no confident answer of the nature model replaces it
        confident = nature_confident(probas[1], nature[1]) if nature else np.zeros(len(records), dtype=bool)
        rows = [record_attributes(record, rules, nature=not sure) for record, sure in zip(records, confident)]
        if nature:
            answers = nature_answers(probas[1], nature[1], rows, confident)
            rows = [(answer, *row[1:]) for answer, row in zip(answers, rows)]
        return [(*topic, *row) for topic, row in zip(zip(*topic_columns(probas[0], card).values()), rows)]
    rows = parallel.map_chunks(classify_chunk, attribute_records(letters), processes, chunk_size, progress)
    topics = {name: list(values) for name, values in zip(TOPIC_COLUMNS, zip(*rows))} if rows else dict.fromkeys(
        TOPIC_COLUMNS, [])
    topics[schema.TOPIC_CONFIDENCE] = np.array(topics[schema.TOPIC_CONFIDENCE], dtype=float)
    topics[schema.NEEDS_REVIEW] = np.array(topics[schema.NEEDS_REVIEW], dtype=bool)
    attributes = attribute_frame([row[len(TOPIC_COLUMNS):] for row in rows], letters.index)
    return letters.assign(**topics).assign(**{column: attributes[column] for column in attributes.columns})


def nature_confident(proba, card):
    """Whether the nature model's confidence reaches its card's review threshold, per letter."""
    return proba.max(axis=1) >= card["review"]["threshold"]


def nature_answers(proba, card, rule_rows, confident):
    """The nature of each letter: the nature model's answer where it is ``confident``
    (``nature_confident(proba, card)``), else the rules' (the first value of each of ``rule_rows``)."""
    predicted = np.array(card["labels"], dtype=object)[proba.argmax(axis=1)]
    return np.where(confident, predicted, [row[0] for row in rule_rows]).tolist()
