"""Specific names: hand-written sentences of the kinds petition letters are made of."""
import numpy as np
import pandas as pd
import pytest

from pipeline.dedup.matter import NameExtractor, TermVectorizer, top_entries


@pytest.fixture(scope="module")
def extractor(config):
    return NameExtractor.from_config(config)


def names(extractor, text):
    return extractor.extract(text)[0]


def test_one_sum_quoted_two_ways_is_one_name(extractor):
    assert names(extractor, "每月被扣14510元") == names(extractor, "一个月多扣1.5万元") == ["≈1.5万元"]
    assert names(extractor, "已经借了6262800元外债") == names(extractor, "欠了626.3万元的债")
    assert names(extractor, "花了3700元") != names(extractor, "花了3600元")
    assert names(extractor, "罚款50元") == []  # too few digits to pin a matter down


def test_institutions_named_with_their_place(extractor):
    assert names(extractor, "我2021年到江北市中医院住院") == ["江北市中医院"]
    assert names(extractor, "在青山县人民医院做手术") == ["青山县人民医院"]
    assert names(extractor, "孩子在江北市第一中学读书") == ["江北市第一中学"]
    assert names(extractor, "到县人民医院看病") == []  # which county's?
    assert names(extractor, "为此我跑过青山县人民政府不下十次") == []  # every letter mentions one


def test_dictionary_words_that_are_names(extractor):
    assert names(extractor, "骑电动车经过育才路与工业大道交叉口时") == ["育才路"]
    assert names(extractor, "在解放路摆摊") == ["解放路"]
    assert names(extractor, "实在是走投无路了") == []


def test_leading_words_stripped_unless_a_common_word_is_left(extractor):
    assert names(extractor, "我们一再督促江南华府开发商") == ["江南华府"]
    assert names(extractor, "位于小塘路以东") == ["小塘路"]
    assert names(extractor, "我们在东方明珠苑小区遭到殴打") == ["东方明珠苑"]


def test_full_names_of_people_count_masked_ones_do_not(extractor, config):
    from pipeline.segment import Segmenter
    segmenter = Segmenter.from_config(config)

    def people(text):
        return extractor.extract(text, " ".join(segmenter.cut(text)))
    specific, others = people("2024年7月21日,我在新塘镇被邹国强等人殴打,新塘派出所至今不立案,雷某还威胁我")
    assert "邹国强" in specific and "新塘派出所" in specific
    assert "雷某" in others and "雷某" not in specific
    assert people("我们多次找过镇里,对方一拖再拖,白跑了好几趟")[0] == []


def test_top_entries_order_like_lexsort(board_run):
    """Highest weights of each row first, equal weights in column order: as np.lexsort on
    (column, -weight, row) orders them, on the board's TF-IDF rows with ties made."""
    tokens = pd.read_parquet(board_run / "segmented.parquet", columns=["tokens"])["tokens"].tolist()
    vectors = TermVectorizer(top_terms=1000).transform(tokens)
    vectors.data = np.round(vectors.data, 2).astype(np.float32)  # many equal weights within a row
    vectors.eliminate_zeros()
    lengths = np.diff(vectors.indptr)
    rows = np.repeat(np.arange(vectors.shape[0]), lengths)
    order = np.lexsort((vectors.indices, -vectors.data, rows))
    rank = np.arange(len(order)) - np.repeat(vectors.indptr[:-1], lengths)
    assert (lengths > 5).mean() > 0.9
    np.testing.assert_array_equal(top_entries(vectors, 5), order[rank < 5])
