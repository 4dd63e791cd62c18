"""The letter classifier: one scikit-learn ``Pipeline`` from raw text to calibrated probabilities.

Steps::

    text        LetterText: normalize.TextCleaner, then segment.Segmenter (jieba's words, cut by
                rjieba, + the petition dictionary) → clean_text, tokens, head (the first
                characters: the title)
    features    TF-IDF of the jieba words, of character n-grams of the whole text and of
                character n-grams of the head
    classifier  hierarchy.TwoLevelClassifier over CalibratedLinearSVC (class-balanced LinearSVC
                with sigmoid-calibrated probabilities): the first-level class, then the
                second-level class under it; one-vs-rest at the first level for multi-label data

A model directory holds ``model.joblib`` and ``model_card.json`` (data hash, labels,
cross-validated metrics, thresholds, library versions, the command that trained it).
Hyperparameters are fixed in ``corpora/config.yaml`` (``classify:``), not tuned per data set.
"""
import hashlib
import importlib.metadata
import json
import platform
import tempfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import scipy
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from pipeline import __version__, parallel, schema
from pipeline.classifier.features import SharedFeatures
from pipeline.classifier.hierarchy import TwoLevelClassifier, best_leaves
from pipeline.classifier.taxonomy import LEVEL_SEP, level_label, level_sets
from pipeline.classifier.ngrams import CharNgramCounter
from pipeline.errors import PetitionError
from pipeline.normalize import TextCleaner
from pipeline.rundir import atomic_path, write_json
from pipeline.segment import Segmenter

HEAD = "head"
MODEL_FILE = "model.joblib"
CARD_FILE = "model_card.json"
# A pickled scikit-learn model is only guaranteed to load and predict the same with the
# library versions that saved it; jieba's version (its dictionary) changes the words the model
# sees. rjieba, which cuts them, is pinned and tested to give jieba's words, so it is recorded only.
CHECKED_LIBRARIES = ("scikit-learn", "numpy", "scipy", "jieba")


class LetterText(TransformerMixin, BaseEstimator):
    """Clean and segment letter texts.

    ``fit`` reads the dictionary files into the estimator, so a saved model carries its
    dictionaries and segments the same wherever it is loaded. The rjieba cutter and the
    OpenCC converter are built on first use and never pickled.

    Parameters
    ----------
    user_dicts : tuple of str
        jieba user dictionaries (read at ``fit``).
    stopwords : str, optional
        Stopword file (read at ``fit``).
    hmm, min_token_chars : see ``segment.Segmenter``.
    mask_char, id_mask, phone_mask, boilerplate : see ``normalize.TextCleaner``.
    head_chars : int
        Length of the ``head`` column: the start of the text, where the title is.
    max_chars : int
        Only the first ``max_chars`` characters of the cleaned text are used (0: all).

    ``transform`` takes an iterable of str and returns a DataFrame with ``clean_text``,
    ``tokens`` (space-joined words) and ``head``, one row per text.
    """

    def __init__(self, user_dicts=(), stopwords=None, hmm=True, min_token_chars=1, mask_char="某",
                 id_mask="[身份证号]", phone_mask="[手机号]", boilerplate=(), head_chars=25, max_chars=0):
        self.user_dicts, self.stopwords, self.hmm = user_dicts, stopwords, hmm
        self.min_token_chars, self.mask_char, self.id_mask = min_token_chars, mask_char, id_mask
        self.phone_mask, self.boilerplate, self.head_chars = phone_mask, boilerplate, head_chars
        self.max_chars = max_chars

    @classmethod
    def from_config(cls, config, extra_dicts=()):
        segmenter = Segmenter.from_config(config, extra_dicts)
        clean = config.normalize
        settings = config.classify
        return cls(user_dicts=tuple(map(str, segmenter.user_dicts)), stopwords=str(segmenter.stopwords_path),
                   hmm=settings.hmm, min_token_chars=segmenter.min_token_chars, mask_char=clean.mask_char,
                   id_mask=clean.id_mask, phone_mask=clean.phone_mask, boilerplate=tuple(clean.boilerplate),
                   head_chars=settings.head_chars, max_chars=settings.max_chars)

    def fit(self, X=None, y=None):
        try:
            self.dictionaries_ = [Path(path).read_text(encoding="utf-8") for path in self.user_dicts]
            self.stopword_text_ = Path(self.stopwords).read_text(encoding="utf-8") if self.stopwords else ""
        except OSError as exc:
            raise PetitionError(f"cannot read a segmentation dictionary: {exc}") from exc
        return self

    def transform(self, X):
        return self.prepare(X)

    def prepare(self, X, cleaned=False):
        """``transform(X)``; ``cleaned``: the texts are a run's ``clean_text``, cleaned by
        normalize with this step's settings (``cleans_like``), and only need a light re-clean."""
        check_is_fitted(self, "dictionaries_")
        texts = list(X)
        if not all(isinstance(text, str) for text in texts):
            raise TypeError("LetterText expects strings")
        cleaner, segmenter = self._tools()
        clean_one = cleaner.reclean if cleaned else cleaner.clean
        clean = [clean_one(text)[:self.max_chars or None] for text in texts]
        # object columns: the feature steps read the str objects as they are (pandas' default
        # string columns would make new ones for each step reading them)
        return pd.DataFrame({schema.CLEAN_TEXT: clean, schema.TOKENS: segmenter.cut_joined(clean),
                             HEAD: [text[:self.head_chars] for text in clean]}, dtype=object)

    def cleans_like(self, normalize_settings):
        """Whether normalize with ``normalize_settings`` (``config.normalize``) cleans texts as
        this step does (same masks and boilerplate)."""
        return (self.mask_char, self.id_mask, self.phone_mask, tuple(self.boilerplate)) == (
            normalize_settings.mask_char, normalize_settings.id_mask, normalize_settings.phone_mask,
            tuple(normalize_settings.boilerplate))

    def _tools(self):
        if getattr(self, "_loaded", None) is None:
            user_dicts, stopwords = self._dictionary_files()
            self._loaded = (TextCleaner(self.mask_char, self.id_mask, self.phone_mask, self.boilerplate),
                            Segmenter(user_dicts, stopwords, self.hmm, min_token_chars=self.min_token_chars))
        return self._loaded

    def _dictionary_files(self):
        """Write the embedded dictionaries to files (Segmenter reads files), in a folder named
        by their content so that every process and every model with the same ones shares it."""
        texts = [*self.dictionaries_, self.stopword_text_]
        digest = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()[:16]
        folder = Path(tempfile.gettempdir()) / "petition-model-dicts" / digest
        paths = [folder / f"user{i}.txt" for i in range(len(self.dictionaries_))] + [folder / "stopwords.txt"]
        for path, text in zip(paths, texts):
            if not path.exists():
                with atomic_path(path) as tmp:
                    tmp.write_text(text, encoding="utf-8")
        return paths[:-1], paths[-1]

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_loaded", None)
        return state


class CalibratedLinearSVC(ClassifierMixin, BaseEstimator):
    """A class-balanced ``LinearSVC`` with sigmoid-calibrated probabilities.

    Parameters
    ----------
    C : float
        Inverse regularisation strength of the SVM.
    calibration_folds : int
        Folds of ``CalibratedClassifierCV``; fewer when the rarest class has fewer examples.
    ensemble : bool
        Average one calibrated SVM per fold (better probabilities, ``calibration_folds``
        times the size) instead of one SVM on all the data.

    ``fit(X, y)`` takes a feature matrix and labels; ``predict_proba`` returns an array
    (n_samples, n_classes) in the order of ``classes_``.
    """

    def __init__(self, C=1.0, calibration_folds=5, ensemble=False):
        self.C, self.calibration_folds, self.ensemble = C, calibration_folds, ensemble

    def fit(self, X, y):
        y = np.asarray(y)
        folds = min(self.calibration_folds, np.unique(y, return_counts=True)[1].min())
        # A class seen once (possible inside cross-validation of a small archive) leaves no
        # fold to calibrate on: calibrate on the training data itself then.
        cv = (StratifiedKFold(folds, shuffle=True, random_state=0) if folds >= 2
              else [(np.arange(len(y)), np.arange(len(y)))])
        self.calibrated_ = CalibratedClassifierCV(LinearSVC(C=self.C, class_weight="balanced"), cv=cv,
                                                  ensemble=self.ensemble).fit(X, y)
        self.classes_ = self.calibrated_.classes_
        return self

    def predict_proba(self, X):
        return self.calibrated_.predict_proba(X)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def build_model(text, settings, multilabel=False):
    """An unfitted model.

    Parameters
    ----------
    text : LetterText
    settings : config.ClassifyConfig
    multilabel : bool
        Letters may have several labels (first-level classes one-vs-rest).

    The model is fitted on texts and ``hierarchy.label_array(label_sets)``.
    """
    words = TfidfVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False, sublinear_tf=True,
                            min_df=settings.min_df, max_features=settings.max_features, dtype=np.float32)

    def chars():
        # what TfidfVectorizer(analyzer="char", sublinear_tf=True) computes, faster
        return make_pipeline(CharNgramCounter(tuple(settings.char_ngrams), settings.min_df, settings.max_features),
                             TfidfTransformer(sublinear_tf=True))
    features = ColumnTransformer(
        [("words", words, schema.TOKENS), ("chars", chars(), schema.CLEAN_TEXT), ("head", chars(), HEAD)],
        transformer_weights={"words": 1.0, "chars": 1.0, "head": settings.head_weight})
    classifier = TwoLevelClassifier(
        CalibratedLinearSVC(settings.svm_c, settings.calibration_folds, settings.calibration_ensemble), multilabel)
    return Pipeline([("text", text), ("features", features), ("classifier", classifier)])


def fit_model(model, texts, y):
    """Fit ``model``; an archive too small to learn a vocabulary from is a PetitionError."""
    try:
        return model.fit(texts, y)
    except ValueError as exc:
        if "no terms remain" in str(exc) or "empty vocabulary" in str(exc):
            raise PetitionError(f"too little text to learn from ({exc})") from exc
        raise


def cross_validated_proba(model, texts, y, labels, strata, folds, seed=0, processes=1, progress=None):
    """Out-of-fold probabilities of ``model`` (unfitted) on ``texts``.

    Parameters
    ----------
    y : array
        One list of labels per text (``hierarchy.label_array``).
    labels : list of str
        The model's outputs when fitted on all the texts (``hierarchy.leaf_labels``): the
        columns of the result. A fold's model lacking one gives it probability 0.
    strata : array of str
        One label per text to stratify the folds on (the primary label).
    folds : int
        At most the count of the rarest stratum.

    progress : callable, optional
        Called with 1 after each fold.

    Returns an array (n_texts, n_labels). Cleaning and segmentation learn nothing from the
    labels, so they run once for all folds; the rest of the model is refitted per fold.
    """
    prepared = clone(model[:1]).fit_transform(texts)
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(prepared, strata))

    def fold_proba(fold_splits):
        results = []
        for train, test in fold_splits:
            fitted = fit_model(clone(model[1:]), prepared.iloc[train], y[train])
            results.append((test, list(fitted.classes_), fitted.predict_proba(prepared.iloc[test])))
        return results

    column = {label: j for j, label in enumerate(labels)}
    proba = np.zeros((len(prepared), len(labels)))
    for test, classes, fold in parallel.map_chunks(fold_proba, splits, processes, chunk_size=1, progress=progress):
        known = [k for k, label in enumerate(classes) if label in column]
        proba[np.ix_(test, [column[classes[k]] for k in known])] = fold[:, known]
    return proba


# --- decisions and metrics --------------------------------------------------------------------

def ranked(proba, labels):
    """Per text, the label indices: the answer (``hierarchy.best_leaves``) first, then the others,
    most probable first (array n_texts x n_labels)."""
    first = proba.astype(float, copy=True)
    first[np.arange(len(first)), best_leaves(proba, labels)] = np.inf
    return np.argsort(-first, axis=1, kind="stable")


def topic_sets(proba, labels, thresholds, order=None):
    """Per text: the answer first, then every other label whose probability reaches its
    threshold, most probable first (list of lists of str). ``order``: ``ranked(proba, labels)``,
    when the caller has it."""
    order = ranked(proba, labels) if order is None else order
    limits = np.array([thresholds[label] for label in labels])
    kept = np.take_along_axis(proba >= limits, order, axis=1)
    kept[:, 0] = True
    names = np.array(labels, dtype=object)
    return [names[row[keep]].tolist() for row, keep in zip(order, kept)]


def label_thresholds(proba, truth_sets, labels, grid=np.arange(0.05, 0.96, 0.05)):
    """Per label, the probability threshold with the best F1 of "probability ≥ threshold"
    against membership of the true label set (chosen on out-of-fold probabilities)."""
    thresholds = {}
    for j, label in enumerate(labels):
        member = np.array([label in truth for truth in truth_sets])
        scores = [f1_score(member, proba[:, j] >= t, zero_division=0) for t in grid]
        thresholds[label] = round(float(grid[int(np.argmax(scores))]), 2)
    return thresholds


def review_threshold(confidence, correct, target_precision):
    """The lowest confidence from which the accepted predictions reach ``target_precision``.

    Returns a dict: threshold (1.0 when no threshold reaches the target: review everything),
    the precision and the share of letters (coverage) above it.
    """
    order = np.argsort(-confidence, kind="stable")
    precision = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    reaching = np.nonzero(precision >= target_precision)[0]
    if not len(reaching):
        return {"threshold": 1.0, "target_precision": target_precision, "precision": None, "coverage": 0.0}
    last = reaching[-1]
    return {"threshold": round(float(confidence[order[last]]), 4), "target_precision": target_precision,
            "precision": round(float(precision[last]), 4), "coverage": round((last + 1) / len(order), 4)}


def classification_metrics(truth_sets, predicted_sets, labels):
    """Accuracy of the primary (first) label, macro-F1 and per-label precision/recall/F1 over
    label sets, and the confusion matrix of primary labels (rows true, columns predicted).

    For single-label data the sets hold one label each and these are the usual figures.
    """
    index = {label: j for j, label in enumerate(labels)}

    def indicator(sets):
        matrix = np.zeros((len(sets), len(labels)), dtype=int)
        for i, labels_of in enumerate(sets):
            matrix[i, [index[label] for label in labels_of if label in index]] = 1
        return matrix
    truth, predicted = indicator(truth_sets), indicator(predicted_sets)
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, zero_division=0)
    primary_true = [s[0] for s in truth_sets]
    primary_pred = [s[0] for s in predicted_sets]
    return {
        "rows": len(truth_sets),
        "accuracy": round(float(np.mean(np.array(primary_true) == np.array(primary_pred))), 4),
        "macro_f1": round(float(np.mean(f1)), 4),
        "per_label": {label: {"precision": round(float(p), 4), "recall": round(float(r), 4),
                              "f1": round(float(f), 4), "support": int(s)}
                      for label, p, r, f, s in zip(labels, precision, recall, f1, support)},
        "confusion": {"labels": list(labels),
                      "matrix": confusion_matrix(primary_true, primary_pred, labels=list(labels)).tolist()},
    }


def level_metrics(truth_sets, predicted_sets, level, labels):
    """``classification_metrics`` at one level, with ``level`` added.

    Level 1 cuts every label to its first level. Level 2 compares whole labels on the letters
    whose truth has second-level labels (only those count, ``rows`` says how many; per-label
    figures for second-level labels only); a letter labelled at the first level only says
    nothing about the second. ``labels`` (a model's outputs) fix the order of the per-label
    figures; labels of the truth they lack follow. No letter to score at level 2: only
    ``level`` and ``rows`` (0).
    """
    if level == 1:
        truth, predicted = level_sets(truth_sets, 1), level_sets(predicted_sets, 1)
    else:
        kept = [i for i, truth in enumerate(truth_sets) if any(LEVEL_SEP in label for label in truth)]
        truth = [[label for label in truth_sets[i] if LEVEL_SEP in label] for i in kept]
        predicted = [predicted_sets[i] for i in kept]
        if not kept:
            return {"level": level, "rows": 0}
    known = list(dict.fromkeys(level_label(label, level) for label in labels if level == 1 or LEVEL_SEP in label))
    unknown = sorted({label for labels_of in truth for label in labels_of} - set(known))
    return {"level": level, **classification_metrics(truth, predicted, known + unknown)}


# --- persistence ------------------------------------------------------------------------------

def library_versions():
    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "joblib": joblib.__version__,
            "jieba": importlib.metadata.version("jieba"), "rjieba": importlib.metadata.version("rjieba"),
            "pandas": pd.__version__, "pipeline": __version__}


def save_model(model, card, directory):
    """Write ``model.joblib`` and ``model_card.json`` into ``directory`` (created)."""
    directory = Path(directory)
    for _, vectorizer, _ in model.named_steps["features"].transformers_:
        # terms dropped by min_df/max_features: only for introspection, and most of the file
        vectorizer.__dict__.pop("stop_words_", None)
    with atomic_path(directory / MODEL_FILE) as tmp:
        joblib.dump(model, tmp, compress=3)
    write_json(card | {"model_file_bytes": (directory / MODEL_FILE).stat().st_size}, directory / CARD_FILE)


def load_model(directory):
    """Return (model, card) from a model directory, checking the library versions it was
    saved with; every problem is a PetitionError naming the directory."""
    directory = Path(directory)
    card_path, model_path = directory / CARD_FILE, directory / MODEL_FILE
    if not card_path.is_file() or not model_path.is_file():
        raise PetitionError(f"{directory}: no model there (need {MODEL_FILE} and {CARD_FILE}); "
                            "train one with `petition train --data FILE ... --model DIR`")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PetitionError(f"{card_path}: unreadable model card ({exc!r})") from exc
    problem = card_problem(card)
    if problem:
        raise PetitionError(f"{card_path}: {problem}; retrain the model (petition train)")
    saved = card["versions"]
    current = library_versions()
    different = [f"{name} {saved.get(name)} (installed: {current[name]})"
                 for name in CHECKED_LIBRARIES if saved.get(name) != current[name]]
    if different:
        raise PetitionError(f"{directory}: model saved with other library versions: {', '.join(different)}; "
                            f"retrain it with this installation ({card.get('train_command', 'petition train')})")
    try:
        model = joblib.load(model_path)
    except Exception as exc:  # unpickling raises many types for damaged files
        raise PetitionError(f"{model_path}: unreadable model file ({exc!r}); retrain it") from exc
    if not isinstance(model, Pipeline) or [name for name, _ in model.steps] != ["text", "features", "classifier"] \
            or not isinstance(model[0], LetterText):
        raise PetitionError(f"{model_path}: holds a {type(model).__name__}, not a model `petition train` saves; "
                            "retrain it")
    outputs = len(getattr(model, "classes_", ()))
    if outputs != len(card["labels"]):
        raise PetitionError(f"{model_path}: the model has {outputs} outputs but its card {len(card['labels'])} "
                            "labels; retrain it")
    return model, card


def card_problem(card):
    """What is wrong with a model card's fields that prediction reads, or None."""
    if not isinstance(card, dict):
        return "not a JSON object"
    if not isinstance(card.get("versions"), dict):
        return "'versions' is missing or not a mapping of library versions"
    labels = card.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
        return "'labels' is missing or not a list of label names"
    if not isinstance(card.get("multilabel"), bool):
        return "'multilabel' is missing or not true/false"
    thresholds = card.get("topic_thresholds")
    if not isinstance(thresholds, dict) or not all(_is_number(thresholds.get(label)) for label in labels):
        return "'topic_thresholds' lacks a number for a label"
    if not isinstance(card.get("review"), dict) or not _is_number(card["review"].get("threshold")):
        return "'review' lacks a number 'threshold'"
    taxonomy = card.get("taxonomy")
    if not isinstance(taxonomy, dict) or not all(isinstance(entry, dict) for entry in taxonomy.values()):
        return "'taxonomy' is missing or not a mapping of labels to their entries"
    if not isinstance(card.get("data"), dict) or not _is_number(card["data"].get("rows")):
        return "'data' lacks the number of 'rows' trained on"
    return None


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text_step_key(model):
    """What decides the output of a model's text step: its settings and the dictionaries it
    carries (not where they were read from when it was trained)."""
    step = model[0]
    settings = {k: v for k, v in step.get_params().items() if k not in ("user_dicts", "stopwords")}
    return repr(sorted(settings.items())), tuple(step.dictionaries_), step.stopword_text_


def proba_task(models, normalized=None):
    """A function giving, for a list of texts, the probabilities of each of ``models``: a list
    of arrays (n_texts, n_labels of that model).

    Models whose text steps are alike (same parameters and dictionaries, as a topic and a
    nature model trained by one installation) clean and segment each text once between them,
    and count its words and n-grams once (``features.SharedFeatures``).
    ``normalized``: the texts are a run's ``clean_text`` from normalize with these settings
    (``config.normalize``); a model whose text step cleans alike does not clean them again.
    The tokenizers (one per kind of text step) and lookup tables are loaded now, so that
    workers forked after share them.
    """
    groups = {}  # text step -> the models sharing it
    for i, model in enumerate(models):
        groups.setdefault(_text_step_key(model), []).append(i)
    groups = [(members, SharedFeatures([models[i].named_steps["features"] for i in members]),
               normalized is not None and models[members[0]][0].cleans_like(normalized))
              for members in groups.values()]

    def probas(texts):
        result = [None] * len(models)
        for members, features, cleaned in groups:
            prepared = models[members[0]][0].prepare(texts, cleaned=cleaned)
            for i, matrix in zip(members, features.transform(prepared)):
                result[i] = models[i][-1].predict_proba(matrix)
        return result
    probas([""])
    return probas


def predict_probas(models, texts, processes=1, chunk_size=1000, progress=None, normalized=None):
    """Probabilities of each of ``models`` for ``texts`` (list of str), in ``processes`` forked
    workers: a list of arrays (n_texts, n_labels of that model); ``normalized``: see
    ``proba_task``."""
    probas = proba_task(models, normalized)
    rows = parallel.map_chunks(lambda chunk: list(zip(*probas(chunk))), texts, processes, chunk_size, progress)
    return [np.vstack([row[i] for row in rows]) if rows else np.zeros((0, len(model.classes_)))
            for i, model in enumerate(models)]


def predict_proba(model, texts, processes=1, chunk_size=1000, progress=None):
    """Probabilities of ``model`` for ``texts`` (list of str), in ``processes`` forked workers."""
    return predict_probas([model], texts, processes, chunk_size, progress)[0]
