"""The match model: P(same matter) of a pair of letters from its evidence
(``pipeline.dedup.evidence``), and the threshold from which a pair is linked.

A scikit-learn ``Pipeline``: the evidence columns, then gradient-boosted trees kept monotone in
the evidence that can only push one way (``evidence.MONOTONE``), calibrated by Platt scaling
(``CalibratedClassifierCV``), so its output reads as a probability. It is saved with joblib
beside a JSON model card (``petition train-matcher``: data hashes, pair counts, out-of-fold
precision and recall, the threshold chosen for the card's target precision).
"""
import dataclasses
import json
from pathlib import Path

import joblib
import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from pipeline.dedup.evidence import FEATURES, MONOTONE
from pipeline.dedup.index import CARD_FILE, MODEL_FILE
from pipeline.errors import PetitionError


def make_matcher(*, calibration_folds=5, seed=0, max_iter=50, learning_rate=0.15, max_depth=3,
                 min_samples_leaf=10, l2_regularization=1.0):
    """An unfitted match model: fit it on an evidence DataFrame and 0/1 labels (1: one matter).

    Small, regularised trees (the judged pairs are a few hundred): ``max_iter`` trees of
    depth ``max_depth``; ``calibration_folds`` folds for the sigmoid calibration.
    """
    trees = HistGradientBoostingClassifier(
        max_iter=max_iter, learning_rate=learning_rate, max_depth=max_depth, min_samples_leaf=min_samples_leaf,
        l2_regularization=l2_regularization, monotonic_cst=[MONOTONE.get(f, 0) for f in FEATURES],
        random_state=seed)
    folds = StratifiedKFold(calibration_folds, shuffle=True, random_state=seed)
    return Pipeline([
        ("evidence", ColumnTransformer([("features", "passthrough", list(FEATURES))])),
        ("calibrated", CalibratedClassifierCV(trees, method="sigmoid", cv=folds, ensemble=False)),
    ])


@dataclasses.dataclass(frozen=True)
class Matcher:
    """A fitted match model with its ``threshold`` (link from this P) and ``card`` (a dict)."""
    model: Pipeline
    threshold: float
    card: dict

    def probability(self, evidence):
        """P(same matter) of each row of an evidence DataFrame (``evidence.FEATURES``)."""
        if not len(evidence):
            return np.zeros(0)
        return self.model.predict_proba(evidence)[:, 1]

    @property
    def bounded_by_ceiling(self):
        """Whether no pair's P exceeds the P of its ``evidence.evidence_ceiling``: the trees keep
        to ``MONOTONE`` and each Platt calibration rises with their score (slope ``a_`` < 0)."""
        calibrated = self.model[-1]
        wanted = [MONOTONE.get(f, 0) for f in FEATURES]
        return calibrated.method == "sigmoid" and all(
            list(part.estimator.monotonic_cst or []) == wanted and all(c.a_ < 0 for c in part.calibrators)
            for part in calibrated.calibrated_classifiers_)

    def save(self, directory):
        """Write ``model.joblib`` and ``model_card.json`` into ``directory`` (created)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.model, directory / MODEL_FILE, compress=3)
        card = dict(self.card, threshold=self.threshold)
        (directory / CARD_FILE).write_text(json.dumps(card, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory):
        """The match model saved in ``directory``; a one-line ``PetitionError`` when it is
        missing or unreadable."""
        directory = Path(directory)
        try:
            card = json.loads((directory / CARD_FILE).read_text(encoding="utf-8"))
            model = joblib.load(directory / MODEL_FILE)
            threshold = float(card["threshold"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PetitionError(f"{directory}: no usable match model ({exc}); train one with "
                                "`petition train-matcher` or point dedupe.matcher at one") from exc
        if list(card.get("features", [])) != list(FEATURES):
            raise PetitionError(f"{directory}: the match model was trained on other evidence "
                                f"({card.get('features')}); retrain it with `petition train-matcher`")
        return cls(model, threshold, card)
