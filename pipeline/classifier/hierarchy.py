"""Two-level topics: a first-level classifier and, under it, a second-level one.

Labels are taxonomy paths (``城乡建设`` or ``城乡建设/住房保障与房地产``, see ``taxonomy``). A model
outputs one probability per **leaf**: the second-level labels its training data had and, for a
first-level class trained without any, the first-level label itself. A leaf under a first-level
class ``A`` gets ``P(A) · P(leaf | A)``, so the leaves under ``A`` add up to ``P(A)`` and the answer
(``best_leaves``: the most probable first level, then its most probable leaf) always lies under
the first-level answer. Data with first-level labels only give the first-level classifier alone.
"""
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.utils.validation import check_is_fitted

from pipeline.classifier import linear
from pipeline.classifier.taxonomy import LEVEL_SEP, level_label, level_sets


def leaf_labels(label_sets):
    """The leaves a model trained on ``label_sets`` outputs, sorted by first level, then path."""
    paths = {label for labels in label_sets for label in labels if LEVEL_SEP in label}
    firsts = sorted({level_label(label, 1) for labels in label_sets for label in labels})
    return [leaf for first in firsts
            for leaf in (sorted(p for p in paths if level_label(p, 1) == first) or [first])]


def label_array(label_sets):
    """An object array holding one list of labels per letter (the ``y`` of ``TwoLevelClassifier``)."""
    y = np.empty(len(label_sets), dtype=object)
    y[:] = [list(labels) for labels in label_sets]
    return y


def best_leaves(proba, labels):
    """Per row of ``proba`` (n, len(labels)), the index of the answer: the most probable leaf
    under the most probable first-level class (leaf probabilities summed per first level)."""
    firsts = [level_label(label, 1) for label in labels]
    groups = list(dict.fromkeys(firsts))
    member = np.zeros((len(labels), len(groups)), dtype=bool)
    member[np.arange(len(labels)), [groups.index(first) for first in firsts]] = True
    best_group = (proba @ member).argmax(axis=1)
    return np.where(member[:, best_group].T, proba, -1.0).argmax(axis=1)


def matches(label, truth):
    """Whether the answer ``label`` is right for the true label set ``truth``: it is one of them,
    or lies under one that is a first-level label only."""
    return any(label == true or (LEVEL_SEP not in true and level_label(label, 1) == true) for true in truth)


class TwoLevelClassifier(ClassifierMixin, BaseEstimator):
    """First-level classes, then second-level classes under them, from one feature matrix.

    Parameters
    ----------
    estimator : classifier with predict_proba
        Cloned for each level (a calibrated linear model).
    multilabel : bool
        Letters may have several first-level classes: one-vs-rest at the first level.

    ``fit(X, y)`` takes features and ``y``, one list of labels (paths) per row (``label_array``);
    the second level learns from every (row, second-level label) pair. ``predict_proba``
    returns (n_samples, n_leaves) in the order of ``classes_`` (``leaf_labels``).
    """

    def __init__(self, estimator, multilabel=False):
        self.estimator, self.multilabel = estimator, multilabel

    def fit(self, X, y):
        sets = [list(labels) for labels in y]
        firsts = level_sets(sets, 1)
        self.level1_classes_ = sorted({label for labels in firsts for label in labels})
        if self.multilabel:
            indicator = MultiLabelBinarizer(classes=self.level1_classes_).fit_transform(firsts)
            self.level1_ = OneVsRestClassifier(clone(self.estimator)).fit(X, indicator)
        else:
            self.level1_ = clone(self.estimator).fit(X, np.array([labels[0] for labels in firsts]))
        pairs = [(row, label) for row, labels in enumerate(sets) for label in labels if LEVEL_SEP in label]
        paths = sorted({label for _, label in pairs})
        self.level2_ = (clone(self.estimator).fit(X[[row for row, _ in pairs]], np.array([p for _, p in pairs]))
                        if len(paths) > 1 else None)
        self.level2_classes_ = list(self.level2_.classes_) if self.level2_ is not None else paths
        self.classes_ = np.array(leaf_labels(sets), dtype=object)
        return self

    def predict_proba(self, X):
        check_is_fitted(self, "level1_")
        first, second = self._level_probas(X)
        second = second if second is not None else np.ones((first.shape[0], 1))
        columns = []
        for j, label in enumerate(self.level1_classes_):
            children = [k for k, path in enumerate(self.level2_classes_) if level_label(path, 1) == label]
            if not children:
                columns.append(first[:, j:j + 1])
                continue
            within = second[:, children]
            total = within.sum(axis=1, keepdims=True)
            within = np.divide(within, total, out=np.full_like(within, 1 / len(children)), where=total > 0)
            columns.append(first[:, j:j + 1] * within)
        return np.hstack(columns)

    def _level_probas(self, X):
        """``level1_.predict_proba(X)`` and ``level2_.predict_proba(X)`` (None without a second
        level). Calibrated linear models (``linear.calibrated_parts``) are scored together."""
        ovr = self.multilabel  # level1_ is a OneVsRestClassifier
        models = [*(self.level1_.estimators_ if ovr else [self.level1_]),
                  *([self.level2_] if self.level2_ is not None else [])]
        if linear.calibrated_parts(models) is None:
            return self.level1_.predict_proba(X), self.level2_.predict_proba(X) if self.level2_ is not None else None
        kept, weights = getattr(self, "_stacked", ((), None))
        if len(kept) != len(models) or any(a is not b for a, b in zip(kept, models)):
            weights = linear.stacked_weights(models)
            self._stacked = (models, weights)  # built once after fit; not pickled
        probas = linear.predict_probas(models, X, weights)
        second = probas.pop() if self.level2_ is not None else None
        if not ovr:
            return probas[0], second
        # what OneVsRestClassifier.predict_proba makes of its estimators' probabilities
        first = np.array([proba[:, 1] for proba in probas]).T
        if len(probas) == 1:
            first = np.concatenate(((1 - first), first), axis=1)
        if not self.level1_.multilabel_:
            row_sums = np.sum(first, axis=1)[:, np.newaxis]
            np.divide(first, row_sums, out=first, where=row_sums != 0)
        return first, second

    def __getstate__(self):
        # a copy: object.__getstate__ gives the instance's own __dict__
        return {name: value for name, value in super().__getstate__().items() if name != "_stacked"}

    def predict(self, X):
        proba = self.predict_proba(X)
        return self.classes_[best_leaves(proba, list(self.classes_))]
