"""Character n-gram counts: what scikit-learn's char TF-IDF gives, on the bundled sample."""
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.pipeline import make_pipeline

from pipeline.classifier.ngrams import CharNgramCounter, key_strings, ngram_keys
from pipeline.normalize import TextCleaner
from tests.conftest import sample_path


@pytest.fixture(scope="module")
def texts():
    sample = pd.read_csv(sample_path(), dtype=str, encoding="utf-8-sig", keep_default_na=False).head(1500)
    cleaner = TextCleaner()
    # raw and cleaned: upper-case Latin, runs of spaces and line breaks, traditional script
    raw = (sample["标题"] + "\n  " + sample["内容"]).tolist()
    return raw + [cleaner.clean(text) for text in raw] + ["", "A", "ab  C\n\nd"]


@pytest.mark.parametrize("ngram_range", [(1, 1), (1, 2), (2, 3)])
def test_tfidf_equals_scikit_learn_char_tfidf(texts, ngram_range):
    reference = TfidfVectorizer(analyzer="char", ngram_range=ngram_range, min_df=2, sublinear_tf=True,
                                dtype=np.float32).fit(texts[:1000])
    ours = make_pipeline(CharNgramCounter(ngram_range, min_df=2), TfidfTransformer(sublinear_tf=True)).fit(texts[:1000])
    names = ours[0].get_feature_names_out()
    assert sorted(names) == sorted(reference.get_feature_names_out())
    columns = [reference.vocabulary_[name] for name in names]
    difference = ours.transform(texts) - reference.transform(texts)[:, columns]
    assert difference.nnz == 0 or abs(difference).max() < 1e-6


def test_counts_are_scikit_learns_counts_in_canonical_form(texts):
    reference = CountVectorizer(analyzer="char", ngram_range=(1, 2), min_df=2, dtype=np.float32).fit(texts[:1000])
    counter = CharNgramCounter((1, 2), min_df=2).fit(texts[:1000])
    columns = [reference.vocabulary_[name] for name in counter.get_feature_names_out()]
    counts = counter.transform(texts)
    assert counts.has_canonical_format and counts.dtype == np.float32
    assert (counts != reference.transform(texts)[:, columns]).nnz == 0
    again = pickle.loads(pickle.dumps(counter))  # the vocabulary's hash table is not pickled
    assert "_index" not in again.__dict__ and (again.transform(texts[:50]) != counts[:50]).nnz == 0


def test_max_features_keeps_the_most_frequent(texts):
    counter = CharNgramCounter((1, 2), max_features=50).fit(texts)
    totals = CharNgramCounter((1, 2)).fit(texts)
    all_counts = np.asarray(totals.transform(texts).sum(axis=0)).ravel()
    kept = set(counter.get_feature_names_out())
    assert len(kept) == 50
    counts = dict(zip(totals.get_feature_names_out(), all_counts))
    assert min(counts[name] for name in kept) >= max(c for name, c in counts.items() if name not in kept)


def test_keys_stay_inside_each_text():
    keys, rows = ngram_keys(["ab", "c"], (2, 2))
    assert key_strings(keys) == ["ab"] and rows.tolist() == [0]
    assert key_strings(ngram_keys(["甲乙丙"], (3, 3))[0]) == ["甲乙丙"]


def test_bad_input():
    with pytest.raises(ValueError, match="empty vocabulary"):
        CharNgramCounter(min_df=2).fit(["ab", "cd"])
    with pytest.raises(ValueError, match="ngram_range"):
        CharNgramCounter((1, 4)).fit(["abcd"])
    with pytest.raises(TypeError):
        CharNgramCounter().fit(["ab", None])
