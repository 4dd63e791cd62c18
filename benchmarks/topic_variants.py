"""Variants of the topic model against the committed configuration, on the bench's folds.

5-fold stratified cross-validation on the board's ``labeled.csv`` with the folds of
``bench_classify`` (``train_model``'s: ``StratifiedKFold(5, shuffle=True, random_state=seed)`` on the
label). Each variant's settings are fixed in this file, not chosen on the folds; the unlabelled
``messages.xlsx`` (title + body, as the labelled texts are written) is used inside every fold,
never a test fold's label. Cleaning and segmentation learn nothing from labels: they run once.

Variants (issue 13, item 4):
- ``committed``: the configured model (``textmodel.build_model``), the reference of the others;
- ``nb_svm``: the committed features scaled, per class, by that class's log-count ratio (NB-SVM,
  Wang & Manning 2012), one class-balanced ``LinearSVC`` per class, sigmoid-calibrated;
- ``committed+nb_svm``: the two models' probabilities averaged;
- ``complement_nb``: ``ComplementNB`` on the word counts;
- ``self_training``: the committed model refitted with the unlabelled messages it labels with a
  confidence of at least 0.9;
- ``lexicon``: the committed features and, per first-level class of ``taxonomy_3level.xlsx``, how
  many of its second- and third-level names' words the letter holds (log, L2-normalised, weight 0.5);
- ``head_words``: the committed features and TF-IDF of the words of the head (the title), weight 0.5.

Writes per variant the pooled macro-F1, each fold's, and in how many folds it beats ``committed``.

Usage: python benchmarks/topic_variants.py --out bench/topic_variants.json [--variants nb_svm,lexicon]
"""
import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import ComplementNB
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC

from pipeline import schema
from pipeline.classifier import textmodel
from pipeline.classifier.hierarchy import label_array
from pipeline.classifier.national import COLUMNS, OTHER
from pipeline.config import PROJECT_ROOT, load_config
from pipeline.intake import fields, readers
from pipeline.train import read_labelled

BOARD = PROJECT_ROOT.parent / "shared" / "corpora" / "messageboard"
CONFIDENT = 0.9  # self-training keeps unlabelled letters labelled at least this confidently
BLOCK_WEIGHT = 0.5  # of an added feature block, as the committed head block
GENERIC = {OTHER, "管理", "问题", "建设", "政策", "工作", "服务"}  # taxonomy words naming no class


class NBSVM(ClassifierMixin, BaseEstimator):
    """One-vs-rest linear SVMs on features scaled by each class's log-count ratio (NB-SVM).

    ``fit(X, y)``: for class c, r = log((α + Σ x⁺) / ‖α + Σ x⁺‖₁) − log((α + Σ x⁻) / ‖…‖₁) over the
    binarized features of its letters (x⁺) and the others' (x⁻); a class-balanced ``LinearSVC``
    on the rows of X·r, L2-normalised. ``decision_function`` gives (n, n_classes) scores.
    """

    def __init__(self, C=1.0, alpha=1.0):
        self.C, self.alpha = C, alpha

    def fit(self, X, y):
        y, X = np.asarray(y), sp.csr_matrix(X)
        present = X.copy()
        present.data[:] = 1
        self.classes_ = np.unique(y)
        self.ratios_, self.svms_ = [], []
        for label in self.classes_:
            positive = y == label
            p = self.alpha + np.asarray(present[positive].sum(axis=0)).ravel()
            q = self.alpha + np.asarray(present[~positive].sum(axis=0)).ravel()
            self.ratios_.append(np.log(p / p.sum()) - np.log(q / q.sum()))
            self.svms_.append(LinearSVC(C=self.C, class_weight="balanced").fit(
                self._scaled(X, self.ratios_[-1]), positive.astype(int)))
        return self

    @staticmethod
    def _scaled(X, ratio):
        return normalize(sp.csr_matrix(X).multiply(ratio).tocsr())

    def decision_function(self, X):
        return np.column_stack([svm.decision_function(self._scaled(X, ratio))
                                for ratio, svm in zip(self.ratios_, self.svms_)])

    def predict(self, X):
        return self.classes_[self.decision_function(X).argmax(axis=1)]


def taxonomy_lexicon(path, text_step):
    """{first-level class: set of words of its second- and third-level names} from ``path``."""
    table = readers.read_table(path).frame
    lexicon = {}
    for first, rows in table.groupby(COLUMNS[0]):
        names = [name for name in pd.unique(rows[list(COLUMNS[1:])].astype(str).values.ravel()) if name not in GENERIC]
        words = {word for tokens in text_step.transform(names)[schema.TOKENS] for word in tokens.split()}
        lexicon[first] = {word for word in words | set(names) if len(word) >= 2 and word not in GENERIC}
    return lexicon


def lexicon_block(prepared, lexicon):
    """Per letter and first-level class, log(1 + distinct lexicon words held), rows L2-normalised."""
    firsts = sorted(lexicon)
    counts = [[len(set(tokens.split()) & lexicon[first]) for first in firsts] for tokens in prepared[schema.TOKENS]]
    return normalize(sp.csr_matrix(np.log1p(np.array(counts, dtype=float))))


class Board:
    """The board's labelled letters cleaned and segmented once, the unlabelled ones, the folds."""

    def __init__(self, config, seed):
        texts, label_sets, _ = read_labelled(BOARD / "labeled.csv", ["text"], "label")
        self.text_step = textmodel.LetterText.from_config(config).fit()
        self.settings = config.classify
        self.prepared = self.text_step.transform(texts)
        self.y = np.array([labels[0] for labels in label_sets])
        self.classes = np.unique(self.y)
        frame = readers.read_table(BOARD / "messages.xlsx").frame
        unlabelled = fields.as_text(frame["留言主题"]).str.strip() + fields.as_text(frame["留言详情"]).str.strip()
        self.unlabelled = self.text_step.transform(unlabelled.tolist())
        self.head_words = self.text_step.transform(self.prepared[textmodel.HEAD].tolist())[schema.TOKENS]
        self.lexicon = taxonomy_lexicon(BOARD / "taxonomy_3level.xlsx", self.text_step)
        self.folds = list(StratifiedKFold(5, shuffle=True, random_state=seed).split(self.prepared, self.y))

    def committed(self):
        """The configured model without its text step (features, classifier), unfitted."""
        return clone(textmodel.build_model(self.text_step, self.settings)[1:])

    def fit_committed(self, frame, labels):
        return self.committed().fit(frame, label_array([[label] for label in labels]))


def committed(board, train, test):
    return board.fit_committed(board.prepared.iloc[train], board.y[train]).predict_proba(board.prepared.iloc[test])


def nb_svm(board, train, test):
    features = board.committed()[0]
    X = features.fit_transform(board.prepared.iloc[train])
    model = CalibratedClassifierCV(NBSVM(), cv=5, method="sigmoid").fit(X, board.y[train])
    return model.predict_proba(features.transform(board.prepared.iloc[test]))


def complement_nb(board, train, test):
    words = CountVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False)
    model = ComplementNB().fit(words.fit_transform(board.prepared[schema.TOKENS].iloc[train]), board.y[train])
    return model.predict_proba(words.transform(board.prepared[schema.TOKENS].iloc[test]))


def self_training(board, train, test):
    first = board.fit_committed(board.prepared.iloc[train], board.y[train])
    proba = first.predict_proba(board.unlabelled)
    confident = proba.max(axis=1) >= CONFIDENT
    frame = pd.concat([board.prepared.iloc[train], board.unlabelled[confident]], ignore_index=True)
    labels = np.concatenate([board.y[train], first.classes_[proba.argmax(axis=1)][confident]])
    return board.fit_committed(frame, labels).predict_proba(board.prepared.iloc[test])


def with_block(block):
    """A variant: the committed features beside ``block(board, rows, fitted_vectorizer)``, the
    committed classifier over both."""
    def variant(board, train, test):
        features, classifier = board.committed().steps
        fitted = {}
        X = sp.hstack([features[1].fit_transform(board.prepared.iloc[train]),
                       BLOCK_WEIGHT * block(board, train, fitted)]).tocsr()
        classifier[1].fit(X, label_array([[label] for label in board.y[train]]))
        return classifier[1].predict_proba(sp.hstack([features[1].transform(board.prepared.iloc[test]),
                                                      BLOCK_WEIGHT * block(board, test, fitted)]).tocsr())
    return variant


def lexicon_rows(board, rows, _):
    return lexicon_block(board.prepared.iloc[rows], board.lexicon)


def head_word_rows(board, rows, fitted):
    if "head" not in fitted:  # the training rows come first
        fitted["head"] = TfidfVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False, sublinear_tf=True,
                                         min_df=2).fit(board.head_words.iloc[rows])
    return fitted["head"].transform(board.head_words.iloc[rows])


VARIANTS = {"committed": committed, "nb_svm": nb_svm, "complement_nb": complement_nb,
            "self_training": self_training, "lexicon": with_block(lexicon_rows),
            "head_words": with_block(head_word_rows)}
AVERAGES = {"committed+nb_svm": ("committed", "nb_svm")}


def scores(board, proba):
    """Pooled macro-F1 of out-of-fold probabilities and each fold's."""
    predicted = board.classes[proba.argmax(axis=1)]
    folds = [f1_score(board.y[test], predicted[test], average="macro") for _, test in board.folds]
    return round(float(f1_score(board.y, predicted, average="macro")), 4), [round(float(f), 4) for f in folds]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0, help="fold shuffling (bench_classify's default)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated; committed is always run")
    args = parser.parse_args(argv)
    board = Board(load_config(), args.seed)
    names = ["committed", *(name for name in args.variants.split(",") if name != "committed")]
    probas = {}
    for name in names:
        probas[name] = np.zeros((len(board.y), len(board.classes)))
        for train, test in board.folds:
            probas[name][test] = VARIANTS[name](board, train, test)
    probas |= {name: np.mean([probas[part] for part in parts], axis=0)
               for name, parts in AVERAGES.items() if all(part in probas for part in parts)}
    reference = scores(board, probas["committed"])[1]
    results = {"data": str(BOARD / "labeled.csv"), "rows": len(board.y), "seed": args.seed, "variants": {}}
    for name, proba in probas.items():
        pooled, folds = scores(board, proba)
        results["variants"][name] = {"macro_f1": pooled, "fold_macro_f1": folds, "fold_mean": round(float(np.mean(folds)), 4),
                                     "folds_beating_committed": int(sum(f > r for f, r in zip(folds, reference)))}
        print(f"{name:18} macro-F1 {pooled:.4f}  folds {' '.join(f'{f:.4f}' for f in folds)}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
