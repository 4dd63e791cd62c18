"""Classify: topic, confidence and attributes for every letter of a run.

Reads ``segmented.parquet`` and writes ``classified.parquet`` with, per letter:

* ``topic`` (most probable code), ``topic_confidence`` (its calibrated probability),
  ``topics`` (``|``-joined: the topic, then every other label over its threshold from the
  model card), ``top3`` (JSON ``[[code, probability], ...]``), ``needs_review`` (confidence
  under the card's review threshold, or ``classify.generated_review_threshold`` for a model
  trained on generated letters) and
  ``responsible_body`` (from the card's taxonomy);
* the attributes of ``pipeline.classifier.attributes`` (rules in ``corpora/attributes.yaml``),
  overridden by a confident ``nature/`` model where the model directory has one.

The work is ``pipeline.classifier.predict.classify_letters``; this module loads the models and
rules, reads the run and writes the stage. A model whose card says it was trained on generated
letters (``trained_on: generated``) gets a note saying so and how to train on the office's own
archive (`generated_model_notice`); ``nightly`` prints it and the report carries a line.
"""
import collections
from pathlib import Path

from tqdm import tqdm

from pipeline import schema
from pipeline.classifier import predict, textmodel
from pipeline.classifier.attributes import AttributeRules
from pipeline.engine import on_configured_engine
from pipeline.rundir import stage


GENERATED_NOTE = "trained on generated letters"


def generated_model_notice(card, model_dir):
    """One line telling that the model in ``model_dir`` (its ``card``) was trained on generated
    letters, and how to train on the office's own archive; None for any other model."""
    if card.get("trained_on") != "generated":
        return None
    how = card.get("train_on_own_archive") or "petition train (README: petition train, evaluate, classify)"
    return (f"the topic model {model_dir} was trained on generated letters, not on this office's archive: "
            f"its topics are a first sorting to review; train it on your own labelled letters: {how}")


def recorded_notice(run):
    """The generated-model notice classify recorded in ``run``'s manifest, or None."""
    stage_result = run.manifest()[schema.MANIFEST_STAGES].get("classify") or {}
    return (stage_result.get("notes") or {}).get(GENERATED_NOTE)


@on_configured_engine
def run_stage(run, config, *, model=None, processes=None):
    """Classify the segmented letters of ``run`` (a ``RunDir``) into ``classified.parquet``.

    ``model`` is a model directory (default: ``classify.model_dir``); ``processes`` defaults
    to ``classify.processes``. Returns the ``StageResult``.
    """
    settings = config.classify
    processes = processes or settings.processes
    model_dir = Path(model) if model else settings.model_dir
    topic_model, card = textmodel.load_model(model_dir)
    if settings.generated_review_threshold and card.get("trained_on") == "generated":
        # measured on real letters: the card's comes from CV on generated text, far easier than real letters
        card = card | {"review": card["review"] | {"threshold": settings.generated_review_threshold}}
    nature = predict.load_nature_model(model_dir)
    rules = AttributeRules.load(settings.attributes)
    total, batches = run.read_batches("segment", settings.batch_rows, needed=[schema.CLEAN_TEXT])
    counted = {"needs review": 0, "topics": collections.Counter()}

    def classified_batches(bar):
        for letters in batches:  # a batch at a time: a million letters are never all in memory
            classified = predict.classify_letters(letters, topic_model, card, rules, nature, processes,
                                                  settings.chunk_size, progress=bar.update,
                                                  normalized=config.normalize)
            counted["needs review"] += int(classified[schema.NEEDS_REVIEW].sum())
            counted["topics"].update(classified[schema.TOPIC].tolist())
            yield classified
    with stage(run, "classify") as result, tqdm(total=total, desc="classify", unit="letter", disable=None) as bar:
        run.write_batches("classify", classified_batches(bar))
        run.set_quarantine("classify", [])
        result.rows_in = result.rows_out = total
        result.notes = {"model": f"{model_dir} (trained {card.get('created')}, {card['data']['rows']} letters)",
                        "nature": "model + rules" if nature else "rules",
                        "needs review": counted["needs review"],
                        "topics": dict(counted["topics"].most_common(10))}
        notice = generated_model_notice(card, model_dir)
        if notice:
            result.notes[GENERATED_NOTE] = notice
    return result
