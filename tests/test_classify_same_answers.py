"""The faster computations of classify give, to the bit, the answers of those they replace, on
the bundled sample with the default models: the feature steps of several models counted together
(``features``) against each model's own, the calibrated linear models scored together
(``linear``) against scikit-learn scoring each, attribute patterns joined bare or searched in
parts against joined as groups, place words found from the suffixes against the lazy pattern,
home levels kept per place word against found again each time."""
import random
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import sparse
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer

from pipeline import schema

from pipeline.classifier import linear, predict, textmodel
from pipeline.classifier.features import SharedFeatures
from pipeline.classifier.attributes import AnyPattern, AttributeRules, _compile
from pipeline.config import PROJECT_ROOT
from tests.conftest import sample_path


@pytest.fixture(scope="module")
def sample_texts():
    sample = pd.read_csv(sample_path(), dtype=str, encoding="utf-8-sig", keep_default_na=False)
    return (sample["标题"] + "\n" + sample["内容"]).tolist()


def test_default_models_score_as_scikit_learn_scores_each_model(config, sample_texts, monkeypatch):
    model_dir = PROJECT_ROOT / config.classify.model_dir
    topic, _ = textmodel.load_model(model_dir)
    nature, _ = predict.load_nature_model(model_dir)
    texts = sample_texts[:2000]
    two_level = topic[-1]  # one-vs-rest at the first level, then the second level: all stacked
    assert linear.calibrated_parts([*two_level.level1_.estimators_, two_level.level2_]) is not None
    stacked = textmodel.predict_probas([topic, nature], texts, processes=2, chunk_size=500)
    monkeypatch.setattr(linear, "calibrated_parts", lambda models: None)  # each model its own predict_proba
    for fast, reference in zip(stacked, textmodel.predict_probas([topic, nature], texts, chunk_size=500)):
        assert fast.shape == reference.shape and np.array_equal(fast, reference)


def assert_same_matrices(ours, theirs):
    assert type(ours) is type(theirs) and ours.dtype == theirs.dtype and ours.shape == theirs.shape
    if sparse.issparse(theirs):
        assert ours.format == theirs.format == "csr"
        assert np.array_equal(ours.indptr, theirs.indptr) and np.array_equal(ours.indices, theirs.indices)
        ours, theirs = ours.data, theirs.data
    assert np.array_equal(ours, theirs)


def test_models_counted_together_get_their_own_features(config, sample_texts, board_run):
    model_dir = PROJECT_ROOT / config.classify.model_dir
    topic, nature = textmodel.load_model(model_dir)[0], predict.load_nature_model(model_dir)[0]
    board_texts = pd.read_parquet(board_run / "segmented.parquet", columns=[schema.CLEAN_TEXT])[schema.CLEAN_TEXT]
    odd = ["", " ", "ABC abc  ÄÖ\n\n２０２５", "𠮷野家 🙂 的 的 的", "某某某"]
    prepared = topic[0].prepare(sample_texts[:1500] + board_texts.tolist()[:1500] + odd)
    shared = SharedFeatures([topic.named_steps["features"], nature.named_steps["features"]])
    assert sorted(key[0] for key in shared.counters_) == ["chars", "chars", "words"]  # each column counted once
    for chunk in (prepared, prepared.iloc[-len(odd):], prepared.iloc[:1]):
        for ours, model in zip(shared.transform(chunk), (topic, nature)):
            assert_same_matrices(ours, model.named_steps["features"].transform(chunk))


def test_parts_counted_otherwise_run_their_own_transform(config, sample_texts):
    """A step with a part ``build_model`` does not make (scikit-learn's character TF-IDF) and
    dense output, beside the default topic model's step."""
    topic = textmodel.load_model(PROJECT_ROOT / config.classify.model_dir)[0]
    prepared = topic[0].prepare(sample_texts[:600])
    words = topic.named_steps["features"].named_transformers_["words"]
    other = ColumnTransformer([("words", clone(words), schema.TOKENS),
                               ("chars", TfidfVectorizer(analyzer="char", min_df=2), schema.CLEAN_TEXT)],
                              transformer_weights={"chars": 0.5}, sparse_threshold=0).fit(prepared.iloc[:400])
    shared = SharedFeatures([other, topic.named_steps["features"]])
    assert list(shared.counters_) == [("words", schema.TOKENS)] + [key for key in shared.counters_ if key[0] == "chars"]
    ours = shared.transform(prepared.iloc[400:])
    assert isinstance(ours[0], np.ndarray)
    assert_same_matrices(ours[0], other.transform(prepared.iloc[400:]))
    assert_same_matrices(ours[1], topic.named_steps["features"].transform(prepared.iloc[400:]))


def rule_pattern_lists(path):
    """The pattern lists of the rules searched in letters' texts."""
    tables = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [*tables["nature"]["patterns"].values(), tables["law_litigation"]["patterns"],
            tables["anonymous"]["text_markers"], tables["joint"]["markers"], tables["collective"]["markers"]]


def test_attribute_patterns_match_as_joined_in_groups(config, sample_texts):
    """Joined bare, the patterns match where joined in groups; searched in parts
    (``AnyPattern``), they are found in the same letters."""
    for patterns in rule_pattern_lists(PROJECT_ROOT / config.classify.attributes):
        grouped = re.compile("|".join(f"(?:{pattern})" for pattern in patterns))
        bare, parts = _compile(patterns), AnyPattern(patterns)
        found = [bool(grouped.search(text)) for text in sample_texts]
        assert 0 < sum(found) and [parts.search(text) for text in sample_texts] == found
        for text in sample_texts:
            assert [m.span() for m in bare.finditer(text)] == [m.span() for m in grouped.finditer(text)]
    with pytest.raises(re.error):
        _compile(["(?i)a", "b"])  # a pattern valid only at the start of the whole is refused, as before


def place_pattern(rules):
    """The regular expression ``AttributeRules.place_words`` finds the words of."""
    return re.compile(rf"[\u4e00-\u9fff]{{1,8}}?(?:{'|'.join(map(re.escape, rules.suffix_level))})")


def test_place_words_are_those_of_the_lazy_pattern(config, sample_texts, board_run):
    rules = AttributeRules.load(PROJECT_ROOT / config.classify.attributes)
    pattern = place_pattern(rules)
    draw = random.Random(0)
    letters = "".join(rules.suffix_level) + "中国a1 ，"  # suffixes overlapping, inside runs, after non-Chinese
    made = ["".join(draw.choice(letters) for _ in range(draw.randint(0, 30))) for _ in range(50_000)]
    board_texts = pd.read_parquet(board_run / "segmented.parquet", columns=[schema.CLEAN_TEXT])[schema.CLEAN_TEXT]
    texts = [*sample_texts, *board_texts, *made]
    assert sum(map(bool, map(rules.place_words, texts))) > len(texts) / 2
    assert [rules.place_words(text) for text in texts] == [[m.group() for m in pattern.finditer(text)] for text in texts]


def test_home_levels_kept_per_word_are_those_found_each_time(config, sample_texts):
    rules = AttributeRules.load(PROJECT_ROOT / config.classify.attributes)

    def found_again(text):
        levels = {next(level for suffix, level in rules.suffix_level.items() if word.endswith(suffix))
                  for word in (m.group(0) for m in place_pattern(rules).finditer(text))
                  if not word.endswith(rules.not_places)}
        return min(levels, key=rules.levels.index) if levels else ""
    assert [rules.home_level(text) for text in sample_texts * 2] == [found_again(text) for text in sample_texts * 2]
