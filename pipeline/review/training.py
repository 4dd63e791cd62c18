"""Retraining with the analysts' corrections: train a candidate, compare it, activate it, roll back.

A candidate model is trained into ``HOME/review/candidates/<matcher|topics>``; the page shows
its cross-validated figures beside the active model's; activating copies the active model to
``<active>.previous`` (kept for :func:`rollback`) and the candidate into the active folder
(``dedupe.matcher``, ``classify.model_dir``).

- The match model: ``train_matcher.train_matcher_command`` over the pair files the active
  model was trained on (its card's sources that exist here, or those given) plus the home's
  ``same``/``different`` decisions, written as judged pairs (``decided_pairs.csv``).
- The topic model: ``petition train`` with the active model's own training command (its card's
  ``train_command``), ``--model`` the candidate folder and ``--with-decisions HOME``: the
  home's topic corrections override the archive's labels.
"""
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits

from pipeline import schema
from pipeline.config import PROJECT_ROOT
from pipeline.dedup.index import CARD_FILE
from pipeline.errors import PetitionError
from pipeline.review.security import review_dir
from pipeline.rundir import write_csv

MATCHER, TOPICS = "matcher", "topics"
DECIDED_PAIRS = "decided_pairs.csv"
PREVIOUS_SUFFIX = ".previous"


def candidate_dir(home, kind):
    return review_dir(home) / "candidates" / kind


def read_card(directory):
    """The model card of ``directory`` as a dict; None when there is none."""
    path = Path(directory) / CARD_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise PetitionError(f"{path}: unreadable model card ({exc})") from None


def correction_counts(effective):
    """How many corrections of each kind are in force (a ``decisions.Effective``)."""
    return {"topic": len(effective.topics), "same": len(effective.must_link),
            "different": len(effective.cannot_link), "detach": len(effective.detached)}


def matcher_figures(card):
    """{figure: value} of a match model card: the link threshold and, per source of pairs, the
    out-of-fold precision, recall, average precision and pairs (empty without a card)."""
    if not card:
        return {}
    figures = {"threshold": card.get("threshold")}
    for source, values in card.get("out_of_fold", {}).items():
        figures.update({f"{source} {name}": value for name, value in values.items()})
    return figures


def topic_figures(card):
    """{figure: value} of a topic model card: cross-validated accuracy and macro-F1 (first level,
    and second level when the model has second-level labels), folds, letters."""
    if not card:
        return {}
    cv, cv2 = card.get("cross_validation", {}), card.get("cross_validation_level2") or {}
    return {"accuracy": cv.get("accuracy"), "macro_f1": cv.get("macro_f1"),
            **{f"level2 {name}": cv2[name] for name in ("accuracy", "macro_f1") if name in cv2},
            "folds": cv.get("folds"), "letters": card.get("data", {}).get("rows")}


def side_by_side(active, candidate):
    """[(figure, active value, candidate value)] over the figures of either."""
    return [(name, active.get(name), candidate.get(name)) for name in dict.fromkeys([*active, *candidate])]


def card_sources(card):
    """(home, pair file) of a match model card's judged and truth sources that exist on this machine."""
    found = []
    for source in (card or {}).get("data", []):
        home, file = source.get("home"), source.get("file")
        if home and file and source.get("kind") != "decided" and Path(home).is_dir() and Path(file).is_file():
            found.append((home, file))
    return found


def write_decided_pairs(effective, path):
    """The ``same``/``different`` decisions in force, as judged pairs (letter_a, letter_b, label)."""
    rows = [(a, b, "SAME") for a, b in sorted(effective.must_link)] + \
           [(a, b, "DIFF") for a, b in sorted(effective.cannot_link)]
    write_csv(pd.DataFrame(rows, columns=[schema.LETTER_A, schema.LETTER_B, "label"]), path)
    return len(rows)


def train_matcher_candidate(home, config, effective, *, sources=None):
    """Train a candidate match model into ``candidate_dir(home, MATCHER)`` on ``sources``
    ([(home, pair file)], default: the active model's that exist here) and the home's decided
    pairs. Returns the candidate's card."""
    from pipeline.train_matcher import train_matcher_command  # scikit-learn: only when retraining
    sources = list(sources if sources is not None else card_sources(read_card(config.dedupe.matcher)))
    out = candidate_dir(home, MATCHER)
    pairs_file = review_dir(home) / DECIDED_PAIRS
    if write_decided_pairs(effective, pairs_file):
        sources.append((str(home), str(pairs_file)))
    if not sources:
        raise PetitionError("no pairs to train on: the active match model's pair files are not on this machine "
                            "and no same/different decision exists yet; start the workbench with --pairs HOME FILE")
    if out.exists():
        shutil.rmtree(out)
    # decided pairs come in as the home's judged pairs file, so the store is not read twice. One
    # OpenMP thread: the trees fit on hundreds of pairs, where threads cost more than they give
    # (5x slower on a busy 2-core machine), and the workbench keeps answering pages meanwhile.
    with threadpool_limits(1):
        train_matcher_command(config, pairs=sources, out=out, decisions=False)
    return read_card(out)


def topic_train_argv(card, home, out):
    """``petition train`` arguments that retrain the active topic model (its card's
    ``train_command``) into ``out`` with the home's topic corrections (``--with-decisions HOME``)."""
    command = (card or {}).get("train_command")
    if not command:
        raise PetitionError("the active topic model's card has no train_command: retrain it with `petition train`")
    argv = shlex.split(command)[2:]  # drop "petition train"
    # a model retrained here has both options in its command already: replaced, not repeated
    for option, value in (("--model", out), ("--with-decisions", home)):
        if option in argv:
            argv[argv.index(option) + 1] = str(value)
        else:
            argv += [option, str(value)]
    return ["train", *argv]


def train_topic_candidate(home, config, *, config_file=None):
    """Train a candidate topic model into ``candidate_dir(home, TOPICS)`` through ``petition train
    --with-decisions`` (in a child process, from the project root its card's paths are relative
    to). Returns the candidate's card; a ``PetitionError`` with the command's last line on failure."""
    out = candidate_dir(home, TOPICS)
    argv = topic_train_argv(read_card(config.classify.model_dir), Path(home).resolve(), out.resolve())
    if out.exists():
        shutil.rmtree(out)
    prefix = ["--config", str(config_file)] if config_file else []
    done = subprocess.run([sys.executable, "-m", "pipeline", *prefix, *argv], cwd=PROJECT_ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise PetitionError(f"petition train failed: {lines[-1] if lines else done.returncode}")
    return read_card(out)


def activate(candidate, active):
    """Make ``candidate`` the active model in ``active``, keeping the active one in
    ``<active>.previous``. Returns the previous folder."""
    candidate, active = Path(candidate), Path(active)
    if read_card(candidate) is None:
        raise PetitionError(f"{candidate}: no candidate model to activate; retrain first")
    previous = active.with_name(active.name + PREVIOUS_SUFFIX)
    incoming = active.with_name(active.name + ".incoming")
    shutil.rmtree(incoming, ignore_errors=True)
    shutil.copytree(candidate, incoming)
    if active.exists():
        shutil.rmtree(previous, ignore_errors=True)
        active.rename(previous)
    incoming.rename(active)
    shutil.rmtree(candidate)
    return previous


def rollback(active):
    """Put ``<active>.previous`` back as the active model (the rolled-back one becomes the previous)."""
    active = Path(active)
    previous = active.with_name(active.name + PREVIOUS_SUFFIX)
    if read_card(previous) is None:
        raise PetitionError(f"{previous}: no previous model to roll back to")
    swap = active.with_name(active.name + ".swap")
    shutil.rmtree(swap, ignore_errors=True)
    active.rename(swap)
    previous.rename(active)
    swap.rename(previous)
    return active
