"""The feature steps of several fitted models, computed together.

A topic model and a nature model trained by one installation read the same columns (the jieba
words, the character n-grams of the text and of its head), each with its own vocabulary and
TF-IDF weights. Counting the words and n-grams is most of a feature step's cost.
``SharedFeatures`` counts each column once against the union of the models' vocabularies, then
gives each model its own columns of those counts and applies its own TF-IDF weights: the very
matrices each model's ``features`` step (a ``ColumnTransformer``) gives, in less time.
"""
import itertools
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer
from sklearn.pipeline import Pipeline

from pipeline.classifier.ngrams import CharNgramCounter, count_matrix, ngram_keys


class SharedFeatures:
    """What ``step.transform(prepared)`` gives for each of ``feature_steps``, counting each
    column once.

    Parameters
    ----------
    feature_steps : list of fitted ColumnTransformer
        The ``features`` steps of models (``textmodel.build_model``). Parts that count as
        ``build_model``'s do (words split on spaces by ``TfidfVectorizer``, character n-grams
        by ``CharNgramCounter`` then ``TfidfTransformer``) share their counting; any other
        part runs its own ``transform``.

    ``transform(prepared)`` takes the text step's DataFrame and returns one matrix per feature
    step, in order: CSR, or an array where the step's output is dense.
    """

    def __init__(self, feature_steps):
        steps = []
        for step in feature_steps:
            weights = step.transformer_weights or {}
            steps.append([_Part(transformer, column, weights.get(name), _counting(transformer, column))
                          for name, transformer, column in step.transformers_
                          if not (name == "remainder" and transformer == "drop")])
        vocabularies = {}
        for part in (part for parts in steps for part in parts if part.counting):
            vocabularies.setdefault(part.counting.key, []).append(part.counting.vocabulary)
        self.counters_ = {key: _UnionCounter(key, found) for key, found in vocabularies.items()}
        self.steps_ = [[part._replace(remap=self.counters_[part.counting.key].remap(part.counting.vocabulary))
                        if part.counting else part for part in parts] for parts in steps]
        # a step fitted on few texts may have dense output (denser than its sparse_threshold)
        self.sparse_ = [step.sparse_output_ for step in feature_steps]

    def transform(self, prepared):
        counted = {key: counter.count(prepared[key[1]]) for key, counter in self.counters_.items()}
        matrices = []
        for parts, sparse_output in zip(self.steps_, self.sparse_):
            blocks = [self._block(part, prepared, counted) for part in parts]
            matrices.append(sparse.hstack(blocks).tocsr() if sparse_output else
                            np.hstack([block.toarray() if sparse.issparse(block) else block for block in blocks]))
        return matrices

    @staticmethod
    def _block(part, prepared, counted):
        if part.counting is None:
            block = part.transformer.transform(prepared[part.column])
        else:
            n_texts, rows, places = counted[part.counting.key]
            counts = count_matrix(rows, part.remap[places], (n_texts, len(part.counting.vocabulary)),
                                  part.counting.dtype)
            block = part.counting.weighting.transform(counts, copy=False)
        return block if part.weight is None else block * part.weight  # as ColumnTransformer weighs


class _Counting(NamedTuple):
    """How a part counts. Parts with one ``key`` (kind, column, settings) count alike."""
    key: tuple
    vocabulary: object  # words: {word: column}; n-grams: the sorted array of their keys
    dtype: type
    weighting: TfidfTransformer


class _Part(NamedTuple):
    """One part of a feature step (a transformer of its ``ColumnTransformer``)."""
    transformer: object
    column: str
    weight: float
    counting: _Counting  # None: not shared
    remap: np.ndarray = None  # place in the union of vocabularies -> column in this part's (-1: none)


def _counting(transformer, column):
    """The ``_Counting`` of a feature step's part whose counts can be shared, else None."""
    if isinstance(transformer, TfidfVectorizer) and transformer.tokenizer is str.split and not (
            transformer.lowercase or transformer.preprocessor or transformer.stop_words or transformer.binary
            or transformer.strip_accents) and transformer.analyzer == "word" and tuple(
            transformer.ngram_range) == (1, 1) and transformer.input == "content":
        weighting = TfidfTransformer(norm=transformer.norm, use_idf=transformer.use_idf,
                                     smooth_idf=transformer.smooth_idf, sublinear_tf=transformer.sublinear_tf)
        if transformer.use_idf:
            weighting.idf_ = transformer.idf_
        return _Counting(("words", column), transformer.vocabulary_, transformer.dtype, weighting)
    if isinstance(transformer, Pipeline) and len(transformer.steps) == 2 and isinstance(
            transformer[0], CharNgramCounter) and isinstance(transformer[1], TfidfTransformer):
        counter = transformer[0]
        return _Counting(("chars", column, tuple(counter.ngram_range), counter.lowercase),
                         counter.vocabulary_keys_, np.float32, transformer[1])
    return None


class _UnionCounter:
    """Finds one column's words or n-grams in the union of several vocabularies.

    ``count(texts)`` returns (number of texts, row of each known word or n-gram, its place in
    the union); ``remap(vocabulary)`` maps those places to one vocabulary's columns.
    """

    def __init__(self, key, vocabularies):
        self.key = key
        if key[0] == "words":
            union = dict.fromkeys(itertools.chain.from_iterable(vocabularies))
            self.places = {word: j for j, word in enumerate(union)}
            self.size = len(self.places)
        else:
            self.keys = np.unique(np.concatenate(vocabularies))
            self.places = pd.Index(self.keys)
            self.size = len(self.keys)

    def remap(self, vocabulary):
        remap = np.full(self.size, -1, dtype=np.int64)
        if self.key[0] == "words":
            remap[[self.places[word] for word in vocabulary]] = list(vocabulary.values())
        else:
            remap[np.searchsorted(self.keys, vocabulary)] = np.arange(len(vocabulary))
        return remap

    def count(self, texts):
        texts = list(texts)
        if self.key[0] == "words":
            words = [text.split() for text in texts]
            lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
            places = np.fromiter(map(self.places.get, itertools.chain.from_iterable(words), itertools.repeat(-1)),
                                 dtype=np.int64, count=int(lengths.sum()))
            rows = np.repeat(np.arange(len(texts)), lengths)
        else:
            keys, rows = ngram_keys(texts, *self.key[2:])
            places = self.places.get_indexer(keys)
        known = places >= 0
        return len(texts), rows[known], places[known]
