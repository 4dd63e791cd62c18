"""Name evidence that is a name (issue 12 item 4): hand-written phrases of the kinds the
message board is made of, through the extractor the configuration builds."""
import pytest

from pipeline.config import load_config
from pipeline.dedup.matter import NameExtractor


@pytest.fixture(scope="module")
def extractor(isolated_environment):
    return NameExtractor.from_config(load_config())


def names(extractor, text):
    return extractor.extract(text)[0]


@pytest.mark.parametrize("text", [
    "如何决定幼儿园开园时间",          # event word after a name: no 幼儿园开园, no 开园
    "小区配套幼儿园迟迟不开园",        # 开园 alone is a dictionary "place" too short to be one
    "孩子九月份刚入园",
    "组民多次向村部及上级反映",        # ends on a preposition: no 民多次向村
    "噪音严重影响小区居民休息",        # adjective + verb before the suffix: no 严重影响小区
    "反对在小区门口开设医院",          # common word + verb: no 门口开设医院
    "小区且进出医院的车辆很多",        # one character + verb: no 且进出医院
    "走A1区南路的非机动车道",          # 南路 after a boundary unit is no name
    "附近是一大片城中村",
])
def test_phrases_give_no_name(extractor, text):
    assert names(extractor, text) == []


@pytest.mark.parametrize("text, expected", [
    ("岳麓区梅溪湖街道伊景园滨河苑", ["伊景园", "滨河苑"]),
    ("沿韶山路往北", ["韶山路"]),
    ("位于A3区中海国际社区三期", ["中海国际社区"]),  # 中海 is a word: 中 is not stripped
    ("我家住尖山安置小区", ["尖山安置小区"]),        # a verb after a rare word is a name
    ("孩子在星城实验学校读书", ["星城实验学校"]),
    ("物业是鸿润物业服务有限公司", ["鸿润物业服务有限公司"]),
    ("市场监管局和金潇小学等学校", ["金潇小学"]),    # no 金潇小学等学校
])
def test_real_names_still_found(extractor, text, expected):
    assert names(extractor, text) == expected


def test_rules_come_from_the_configuration(isolated_environment):
    """Without the configured rules the fragments come back: the rules, not luck, remove them."""
    config = load_config()
    bare = NameExtractor.from_config(config)
    bare.non_names, bare.end_tags, bare.end_chars = (), frozenset(), set()
    assert names(bare, "组民多次向村部反映") == ["民多次向村"]
    assert names(bare, "噪音严重影响小区居民休息") == ["噪音严重影响小区"]
