"""Probabilities of several sigmoid-calibrated linear classifiers, scored together.

``CalibratedClassifierCV.predict_proba`` over a linear SVM multiplies the features with that
SVM's coefficients, then applies one sigmoid per class, validating its input at every step.
The two-level topic model holds sixteen of them (one per first-level class, one-vs-rest, and
the second level's): sixteen products and some seventy validated calls per batch of letters.
``predict_probas`` gives the same numbers, to the bit, from one product of the features with
every model's coefficients side by side (``stacked_weights``) and the sigmoids applied column
by column as scikit-learn applies them.
"""
import numpy as np
from scipy.special import expit


def calibrated_parts(models):
    """The (model, calibrated member) pairs of fitted models holding a sigmoid-calibrated linear
    classifier as ``calibrated_`` (a ``CalibratedClassifierCV``), in order; None when one of
    ``models`` is not such a model."""
    if not all(getattr(getattr(model, "calibrated_", None), "method", None) == "sigmoid" for model in models):
        return None
    parts = [(model, member) for model in models for member in model.calibrated_.calibrated_classifiers_]
    if not all(hasattr(member.estimator, "coef_") for _, member in parts):
        return None
    return parts


def stacked_weights(models):
    """The coefficients of every linear classifier inside ``models`` (see ``calibrated_parts``)
    side by side: a C-ordered array (n_features, their classes scored, together)."""
    return np.ascontiguousarray(np.hstack([member.estimator.coef_.T for _, member in calibrated_parts(models)]))


def predict_probas(models, X, weights):
    """``[model.predict_proba(X) for model in models]`` for models of ``calibrated_parts``, the
    same numbers; ``weights`` is ``stacked_weights(models)``."""
    scores = X @ weights
    probas, start = [], 0
    for model in models:
        members = model.calibrated_.calibrated_classifiers_
        mean = np.zeros((X.shape[0], len(model.calibrated_.classes_)))
        for member in members:
            width = member.estimator.coef_.shape[0]
            mean += _member_proba(member, scores[:, start:start + width] + member.estimator.intercept_)
            start += width
        mean /= len(members)
        probas.append(mean)
    return probas


def _member_proba(member, decisions):
    """What scikit-learn's ``_CalibratedClassifier.predict_proba`` gives for the decision
    values ``decisions`` (n_samples, classes scored) of its linear classifier (sigmoid)."""
    n_classes = len(member.classes)
    proba = np.zeros((len(decisions), n_classes))
    positions = np.searchsorted(member.classes, member.estimator.classes_)
    for position, values, calibrator in zip(positions, decisions.T, member.calibrators):
        if n_classes == 2:  # one calibrator, for the second class
            position += 1
        proba[:, position] = expit(-(calibrator.a_ * values + calibrator.b_))
    if n_classes == 2:
        proba[:, 0] = 1.0 - proba[:, 1]
    else:
        denominator = np.sum(proba, axis=1)[:, np.newaxis]
        proba = np.divide(proba, denominator, out=np.full_like(proba, 1 / n_classes), where=denominator != 0)
    proba[(1.0 < proba) & (proba <= 1.0 + 1e-5)] = 1.0
    return proba
