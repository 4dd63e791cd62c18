"""Segment: jieba's words from rjieba, domain terms stay whole, workers inherit the dictionaries,
the cache skips known texts."""
from pathlib import Path

import jieba
import pandas as pd
import pytest

from pipeline import schema
from pipeline.segment import JiebaCutter, SegmentCache, Segmenter, segment, segment_texts
from tests.conftest import sample_path


@pytest.fixture(scope="module")
def segmenter(config):
    return Segmenter.from_config(config)


def dictionary_terms(config):
    lines = (config.paths.dict_dir / "petition_dict.txt").read_text(encoding="utf-8").splitlines()
    return [line.split()[0] for line in lines if line.strip()]


def test_dictionary_has_the_domain_terms(config):
    terms = dictionary_terms(config)
    assert len(terms) >= 300 and len(set(terms)) == len(terms)
    for term in ("一信多投", "越级上访", "征地拆迁", "拆迁安置", "涉法涉诉", "执行不力", "林权证",
                 "宅基地", "农民工", "社保金", "住建局"):
        assert term in terms
    # most of them are words plain jieba would split
    plain = jieba.Tokenizer()
    split = sum(len(plain.lcut(term, HMM=False)) > 1 for term in terms)
    assert split >= 300


def test_domain_terms_stay_whole_in_sentences(config, segmenter):
    stopwords = set((config.paths.dict_dir / "stopwords.txt").read_text(encoding="utf-8").split())
    for term in dictionary_terms(config):
        if term not in stopwords:
            assert term in segmenter.cut(f"我们反映{term}的问题，{term}至今没有解决"), term


def test_stopwords_and_punctuation_are_dropped(segmenter):
    tokens = segmenter.cut("尊敬的领导：您好！我们村的征地补偿款，至今未发放。\n谢谢！")
    assert "征地" in tokens or "征地补偿款" in tokens or "征地补偿" in tokens
    assert not {"的", "，", "。", "！", "\n", "您好", " "} & set(tokens)


def test_workers_load_the_user_dictionary(config, segmenter):
    texts = [f"第{i}封信：反映一信多投和越级上访，林权证被收回，社保金被挪用" for i in range(40)]
    parallel = segment_texts(texts, segmenter, processes=2, chunk_size=5)
    assert parallel == segment_texts(texts, segmenter, processes=1)
    for tokens in parallel:
        assert {"一信多投", "越级上访", "林权证", "社保金"} <= set(tokens.split())


def test_extra_dictionary_flag(config, board):
    plain = Segmenter.from_config(config)
    with_places = Segmenter.from_config(config, extra_dicts=[board / "place_words.txt"])
    place = next(line.split()[0] for line in (board / "place_words.txt").read_text(encoding="utf-8").splitlines()
                 if len(line.split()[0]) >= 4 and "小区" in line)
    assert place in with_places.cut(f"{place}的物业问题")
    assert plain.fingerprint() != with_places.fingerprint()


def test_cache_segments_only_new_texts(tmp_path, segmenter):
    letters = pd.DataFrame({schema.CLEAN_TEXT: ["征地拆迁补偿", "拖欠农民工工资", "征地拆迁补偿"]})
    cache = SegmentCache(tmp_path, segmenter.fingerprint())
    first, stats = segment(letters, segmenter, cache)
    assert stats == {"cached": 0, "segmented": 2, "characters": 13}
    more = pd.DataFrame({schema.CLEAN_TEXT: ["拖欠农民工工资", "噪音污染扰民"]})
    second, stats = segment(more, segmenter, SegmentCache(tmp_path, segmenter.fingerprint()))
    assert stats["cached"] == 1 and stats["segmented"] == 1
    assert second[schema.TOKENS].iloc[0] == first[schema.TOKENS].iloc[1]


def test_board_segmentation(board_run):
    letters = pd.read_parquet(Path(board_run) / "segmented.parquet")
    assert len(letters) == 4314 and (letters[schema.TOKENS].str.len() > 0).all()
    assert letters[schema.TOKENS].str.contains(r"(?:^| )A3区(?: |$)").any()   # place dictionary used


def test_segment_cli_reports_cache_hits(board_run, board, cli):
    code, out, _ = cli("segment", "--run", board_run, "--dict", board / "place_words.txt")
    assert code == 0 and "segmented: 0" in out and "cached: 4314" in out


@pytest.fixture(scope="module")
def plain_jieba():
    return jieba_reference([])


def jieba_reference(dicts):
    reference = jieba.Tokenizer()
    reference.initialize()
    for path in dicts:
        reference.load_userdict(str(path))
    return reference


@pytest.mark.parametrize("hmm", [True, False])
def test_cutter_cuts_as_jieba_does(board, board_run, config, hmm):
    """rjieba, mended, gives jieba's words letter for letter on the cleaned letters of the
    sample and of the real board (with its place words, as the board run is segmented)."""
    from pipeline.normalize import TextCleaner

    sample = pd.read_csv(sample_path(), dtype=str, encoding="utf-8-sig", keep_default_na=False)
    cleaner = TextCleaner()
    sample_texts = [cleaner.clean(text) for text in sample["标题"] + "\n" + sample["内容"]]
    board_texts = pd.read_parquet(board_run / "normalized.parquet")[schema.CLEAN_TEXT].tolist()
    # the sample never differed, even unmended; with the HMM off only the probabilities can
    sample_texts, board_texts = sample_texts[:2000], board_texts if hmm else board_texts[:1000]
    petition = config.paths.dict_dir / "petition_dict.txt"
    for dicts, texts in (([petition], sample_texts), ([petition, board / "place_words.txt"], board_texts)):
        cutter, reference = JiebaCutter(dicts, hmm), jieba_reference(dicts)
        differing = [text[:40] for text in texts if cutter.lcut(text) != reference.lcut(text, HMM=hmm)]
        assert not differing


@pytest.mark.parametrize("text, jieba_words", [
    ("比例在80-90之间", ["比例", "在", "80", "-", "90", "之间"]),   # the HMM splits non-Chinese runs
    ("登录baidu.com查询", ["登录", "baidu", ".", "com", "查询"]),
    ("2019.1.3日", ["2019.1", ".", "3", "日"]),
    ("用AT&T的电话", ["用", "AT&T", "的", "电话"]),                 # a dictionary word stays whole
    ("王䶮.com", ["王", "䶮", ".", "com"]),                          # rare characters stand alone
])
def test_cutter_mends_rjieba_where_it_differs(plain_jieba, text, jieba_words):
    assert JiebaCutter().lcut(text) == plain_jieba.lcut(text) == jieba_words


def test_cutter_keeps_jieba_word_probabilities(config, board):
    """jieba counts a redefined word's old frequency in its total too; 停放在 and 多起 depend on it."""
    dicts = [config.paths.dict_dir / "petition_dict.txt", board / "place_words.txt"]
    text = "将车停放在自己门面门口，造成多起医闹纠纷"
    assert JiebaCutter(dicts, hmm=False).lcut(text) == jieba_reference(dicts).lcut(text, HMM=False)
    assert {"停放在", "多起"} <= set(JiebaCutter(dicts, hmm=False).lcut(text))


def test_cutter_never_joins_a_word_of_frequency_zero(tmp_path):
    user = tmp_path / "user.txt"
    user.write_text("西地省 10\n地省 0\n", encoding="utf-8")
    reference = jieba_reference([user])
    for hmm in (True, False):
        cutter = JiebaCutter([user], hmm)
        for text in ("他来自地省", "西地省的地省人", "地省"):
            assert cutter.lcut(text) == reference.lcut(text, HMM=hmm)


@pytest.mark.parametrize("content, message", [(b"not parquet", "unreadable Parquet"),
                                              (None, "missing columns ['clean_text']")])
def test_segment_bad_normalize_output_is_a_one_line_error(cli, tmp_path, content, message):
    path = tmp_path / "normalized.parquet"
    if content is None:  # a Parquet file without the text column
        pd.DataFrame({"letter_id": ["L1"], "title": ["标题"]}).to_parquet(path)
    else:
        path.write_bytes(content)
    code, _, err = cli("segment", "--run", tmp_path)
    assert code != 0 and message in err and str(path) in err
