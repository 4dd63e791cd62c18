"""Segment: domain terms stay whole, workers load the dictionaries, the cache skips known texts."""
from pathlib import Path

import jieba
import pandas as pd
import pytest

from pipeline import schema
from pipeline.segment import SegmentCache, Segmenter, segment, segment_texts
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


def test_jieba_cache_is_in_the_data_dir(config, segmenter):
    segmenter.cut("测试")
    assert list((config.paths.data_dir / "jieba").glob("jieba*.cache"))


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


@pytest.mark.parametrize("hmm", [False, True])
def test_dictionary_cutter_cuts_as_jieba_does(board, config, hmm):
    """The faster cutter gives jieba's words, letter for letter, on the real board and the
    sample (raw text too: traditional script, digits, Latin letters, line breaks)."""
    from pipeline.normalize import TextCleaner
    from pipeline.segment import DictionaryCutter

    messages = pd.read_excel(board / "messages.xlsx").head(2000)
    sample = pd.read_csv(sample_path(), dtype=str, encoding="utf-8-sig", keep_default_na=False).head(1000)
    raw = [f"{title}\n{body}" for title, body in zip(messages["留言主题"], messages["留言详情"].astype(str))]
    raw += (sample["标题"] + "\n" + sample["内容"]).tolist()
    cleaner = TextCleaner()
    texts = raw + [cleaner.clean(text) for text in raw]
    reference = jieba.Tokenizer()
    reference.initialize()
    reference.load_userdict(str(config.paths.dict_dir / "petition_dict.txt"))
    cutter = DictionaryCutter(reference, hmm=hmm)
    differing = [text[:40] for text in texts if cutter.lcut(text) != reference.lcut(text, HMM=hmm)]
    assert not differing


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
