"""Normalize: each cleaning rule, identifier and name masking, pinyin annotations,
pseudonymous petitioner keys."""
import os
import re
import stat

import pandas as pd
import pytest

from pipeline import normalize, schema
from pipeline.normalize import PetitionerKeys, TextCleaner
from tests.conftest import sample_path

VALID_ID = "11010519491231002X"       # checksum-valid example from GB 11643
ID_PATTERN = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")
MOBILE_PATTERN = re.compile(r"(?<!\d)1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)")
# a real office's annual summary, traditional script with pinyin after each character
PINYIN_TEXT = ("總結(jié)是對(duì)過(guò)去一(yī)定時(shí)期內(nèi)的(de)工作（gōng）進(jìn)行(xíng)"
               "回顧(gù)和分析(xī)，世界貿易組織(WTO)的規則(A)")


@pytest.fixture(scope="module")
def cleaner(config):
    return TextCleaner.from_config(config)


@pytest.fixture(scope="module")
def keys(cleaner, config):
    return PetitionerKeys(b"k", cleaner, config.normalize.anonymous_names)


@pytest.mark.parametrize("raw, clean", [
    ("ＡＢＣ１２３，全角", "ABC123,全角"),                                   # NFKC
    ("徵地拆遷補償標準過低", "征地拆迁补偿标准过低"),                       # traditional → simplified
    ("\n\t\t\t\t\t\n\t\t\t\t\t座落在A市\n\t\t\t\t", "座落在A市"),           # HTML whitespace
    ("<p>物业&nbsp;乱收费</p>", "物业乱收费"),                               # tags and entities
    ("房价上升7、4%，面积3、5亩", "房价上升7.4%,面积3.5亩"),                 # 、 as decimal point
    ("甲、乙、丙三人", "甲、乙、丙三人"),                                     # 、 as enumeration stays
    ("征地补偿款至今\n未发放", "征地补偿款至今未发放"),                       # line broken mid-sentence
    ("共  3 户 and\n2 people", "共 3 户 and 2 people"),               # other whitespace collapsed
    ("打印本页 关闭窗口 村里修路", "村里修路"),                               # web boilerplate
])
def test_cleaning_rules(cleaner, raw, clean):
    assert cleaner.clean(raw) == clean


@pytest.mark.parametrize("masked", ["郭××", "郭某", "郭xx", "郭XX", "郭*", "郭＊＊", "郭～", "郭某某", "郭x"])
def test_name_masks_compare_equal(cleaner, masked):
    assert cleaner.clean(f"{masked}反映村干部问题") == "郭某反映村干部问题"


def test_masks_do_not_touch_latin_words(cleaner):
    assert cleaner.clean("用xbox玩游戏,尺寸3x4") == "用xbox玩游戏,尺寸3x4"
    assert cleaner.clean("匿名xxx来信") == "匿名某来信"


def test_identifiers_in_text_are_masked(cleaner):
    text = (f"本人身份证号{VALID_ID}，电话13812345678，另一号码 139-1234-5678，"
            "订单号110105194912310021，座机0571-88886666，邮箱 zs@163.com，卡号6222 0212 3456 7890 123")
    clean = cleaner.clean(text)
    assert clean == ("本人身份证号[身份证号],电话[手机号],另一号码 [手机号],订单号[身份证号],座机[电话],"
                     "邮箱 [邮箱],卡号[银行卡号]")     # an 18-character ID shape is masked, checksum or not


def test_identifiers_run_together_with_other_digits_are_masked_after_a_cue(cleaner):
    clean = cleaner.clean(f"身份证号{VALID_ID}2019年5月12日,联系电话：138123456782020年")
    assert clean == "身份证号[身份证号]2019年5月12日,联系电话:[手机号]2020年"


@pytest.mark.parametrize("raw, clean", [
    ("我叫张三丰，今年65岁", "我叫张某,今年65岁"),
    ("信访人：欧阳倩广投诉电话", "信访人:欧阳某投诉电话"),
    ("投诉人：蒋诚先、陈歌、李菲", "投诉人:蒋某、陈某、李某"),
    ("反映人王五家住白石村", "反映人王某家住白石村"),
    # common words after a cue stay
    ("本人认为本人向法院反映,本人曾多次上访,本人于今年2月,本人曾经是教师", None),
    ("未经业主许可,全体业主陈述的情况,本人万般无奈", None),
    ("我是高桥村的村民,我是白石镇人", None),          # places, not names
])
def test_names_after_cue_words_are_masked(cleaner, raw, clean):
    assert cleaner.clean(raw) == (clean or cleaner.clean(raw.replace("某", "")))
    if clean is None:
        assert "某" not in cleaner.clean(raw)


def test_registered_name_is_masked_wherever_it_occurs(cleaner, keys):
    letters = pd.DataFrame({c: [""] for c in schema.SCHEMA_COLUMNS})
    letters[schema.PETITIONER_NAME], letters[schema.TITLE] = "張三豐", "張三豐的信"
    letters[schema.CONTENT] = "村委会欺负张三丰一家,匿名群众"
    out, _ = normalize.normalize(letters, cleaner, keys)
    assert out[schema.CLEAN_TEXT].tolist() == ["张某的信\n村委会欺负张某一家,匿名群众"]
    letters[schema.PETITIONER_NAME] = "匿名"      # an anonymous name is no one's: text unchanged
    assert normalize.normalize(letters, cleaner, keys)[0][schema.CLEAN_TEXT].str.contains("匿名").all()


def test_masked_names_keep_keyed_hashes_of_the_names_dedupe_counts(cleaner, keys):
    """``masked_names``: what dedupe counted of a masked name, as surname + keyed hash, never
    the name; names the segmenter cut (李|光明) or dictionary words (王伟) were never counted."""
    letters = pd.DataFrame({c: [""] * 3 for c in schema.SCHEMA_COLUMNS})
    letters[schema.PETITIONER_NAME] = ["崔超", "", "崔超"]
    letters[schema.CONTENT] = ["本人崔超,男,家住金鼎村。我是李光明的邻居。信访人:王伟", "举报人邹国强,村支书。",
                               "关于崔超的事,再次反映"]
    out, _ = normalize.normalize(letters, cleaner, keys)
    assert out[schema.CLEAN_TEXT].tolist() == ["\n本人崔某,男,家住金鼎村。我是李某的邻居。信访人:王某",
                                               "\n举报人邹某,村支书。", "\n关于崔某的事,再次反映"]
    masked = out[schema.MASKED_NAMES].tolist()
    assert masked == [keys.name_key("崔超"), keys.name_key("邹国强"), keys.name_key("崔超")]
    assert re.fullmatch(r"崔:[0-9a-f]{16}", masked[0]) and masked[0] != keys.name_key("崔某")
    assert PetitionerKeys(b"other", cleaner).name_key("崔超") != masked[0]      # keyed: the secret decides
    for name in ("崔超", "邹国强", "李光明", "王伟", "光明"):
        assert not out[schema.MASKED_NAMES].str.contains(name).any()
    letters[schema.CONTENT] = "本人崔超。村里欺负崔超,不给地"      # still written after masking: no hash
    assert normalize.normalize(letters.assign(**{schema.PETITIONER_NAME: ""}), cleaner, keys)[0][
        schema.MASKED_NAMES].tolist() == ["", "", ""]


def test_names_after_cues_are_counted_where_they_stand_after_a_registered_name_is_masked(cleaner, keys):
    """Masking the registered name (欧阳倩文 → 欧阳某) shortens the text before the name after
    a cue: that name is still counted, found in the letter as written."""
    letters = pd.DataFrame({c: [""] for c in schema.SCHEMA_COLUMNS})
    letters[schema.PETITIONER_NAME] = "欧阳倩文"
    letters[schema.CONTENT] = "我欧阳倩文反映,欧阳倩文的地被占,欧阳倩文无处种粮。举报人邹国强,村支书。"
    out, _ = normalize.normalize(letters, cleaner, keys)
    assert out[schema.CLEAN_TEXT].tolist() == ["\n我欧阳某反映,欧阳某的地被占,欧阳某无处种粮。举报人邹某,村支书。"]
    assert out[schema.MASKED_NAMES].tolist() == [keys.name_key("邹国强")]


def test_pinyin_annotations_are_removed(cleaner):
    assert cleaner.clean(PINYIN_TEXT) == "总结是对过去一定时期内的工作进行回顾和分析,世界贸易组织(WTO)的规则(A)"
    assert cleaner.clean("成立公司(abc)和协会(xie)") == "成立公司(abc)和协会(xie)"   # no toned pinyin: kept


def test_petitioner_key_prefers_the_strongest_identifier(keys):
    by_id, basis = keys.key_for(name="郭××", id_number=VALID_ID, phone="13812345678")
    assert basis == "id" and by_id == keys.key_for(name="别名", id_number=VALID_ID.lower())[0]
    assert keys.key_for(name="郭某", phone="138 1234 5678")[1] == "phone"
    assert keys.key_for(name="郭××", address="白石村")[0] == keys.key_for(name="郭某", address="白石村")[0]
    assert keys.key_for(name="郭某", address="白石村")[1] == "name_address"
    assert keys.key_for(name="郭某")[1] == "name"
    for anonymous in ("", "匿名", "xxx", "××"):
        assert keys.key_for(name=anonymous) == ("", "none")
    assert keys.key_for(name="郭某")[0] != keys.key_for(name="张某")[0]


def test_key_depends_on_the_secret(cleaner):
    assert PetitionerKeys(b"a", cleaner).key_for(name="张三") != PetitionerKeys(b"b", cleaner).key_for(name="张三")


def test_key_file_created_outside_repo_on_first_use(tmp_path, monkeypatch):
    monkeypatch.delenv("PETITION_KEY")
    monkeypatch.setenv("PETITION_KEY_FILE", str(tmp_path / "secret" / "key"))
    first = normalize.load_key()
    assert first == normalize.load_key() and len(first) == 64
    assert stat.S_IMODE(os.stat(tmp_path / "secret" / "key").st_mode) == 0o600


def test_normalize_quarantines_letters_left_empty(cleaner, keys):
    letters = pd.DataFrame({c: [""] * 2 for c in schema.SCHEMA_COLUMNS})
    letters[schema.CONTENT] = ["打印本页", "村里修路问题"]
    letters[schema.SOURCE_FILE], letters[schema.SOURCE_ROW] = "f.csv", [2, 3]
    out, quarantine = normalize.normalize(letters, cleaner, keys)
    assert out[schema.CLEAN_TEXT].tolist() == ["\n村里修路问题"]
    assert [q[schema.SOURCE_ROW] for q in quarantine] == [2]


def test_board_clean_text_has_no_identifiers_and_keeps_the_original(board_run):
    letters = pd.read_parquet(board_run / "normalized.parquet")
    assert len(letters) == 4314
    for text in letters[schema.CLEAN_TEXT]:
        assert not ID_PATTERN.search(text)
        assert not MOBILE_PATTERN.search(text)
    assert "\n\t\t" in letters[schema.ORIGINAL_TEXT].iloc[0] or "\t" not in letters[schema.CLEAN_TEXT].iloc[0]
    assert not letters[schema.CLEAN_TEXT].str.contains("\t").any()
    assert 0 < letters[schema.WAS_TRADITIONAL].sum() < len(letters) / 10   # a few traditional letters, not all
    # user ids are the only identity on the board: one key per user, never the raw id
    assert letters.groupby(schema.PETITIONER_NAME)[schema.PETITIONER_KEY].nunique().max() == 1
    assert not letters[schema.PETITIONER_KEY].isin(letters[schema.PETITIONER_NAME]).any()


def test_nfkc_is_unicodedata_nfkc(board_run):
    """The fast path gives unicodedata's answer: on the board's letters as received and on
    drawn strings mixing full-width characters with combining marks, compatibility ideographs,
    circled digits and ligatures (which unicodedata must still normalize)."""
    import random
    import unicodedata
    received = pd.read_parquet(board_run / "normalized.parquet", columns=[schema.ORIGINAL_TEXT])[schema.ORIGINAL_TEXT]
    draw = random.Random(0)
    letters = "ＡａＺ１，（）\u3000A,中\u0301\u0327\u0308\uf900\u2460ﬁ\uff9e\u30ab\u309a\uff76"
    drawn = ["".join(draw.choice(letters) for _ in range(draw.randint(0, 12))) for _ in range(20_000)]
    texts = [*received, *drawn]
    assert sum(text != unicodedata.normalize("NFKC", text) for text in texts) > 5_000
    assert [normalize.nfkc(text) for text in texts] == [unicodedata.normalize("NFKC", text) for text in texts]


def test_parallel_normalize_equals_serial(config, cleaner, keys):
    from pipeline import ingest
    from tests.conftest import sample_path
    letters = ingest.ingest([sample_path()], config)[0].head(600)
    serial, _ = normalize.normalize(letters, cleaner, keys, processes=1)
    parallel, _ = normalize.normalize(letters, cleaner, keys, processes=2, chunk_size=50)
    pd.testing.assert_frame_equal(serial, parallel)
    assert serial[schema.WAS_TRADITIONAL].any() and (serial[schema.PETITIONER_KEY_BASIS] == "id").any()


def test_sample_registered_identifiers_never_survive_in_clean_text(config, cleaner, keys):
    from pipeline import ingest
    from tests.conftest import sample_path
    letters = ingest.ingest([sample_path()], config)[0]
    clean = "\n".join(normalize.normalize(letters, cleaner, keys, processes=2)[0][schema.CLEAN_TEXT])
    registered = set(letters[schema.PETITIONER_ID_NUMBER]) | set(letters[schema.PETITIONER_PHONE])
    assert len(registered) > 1000
    assert [value for value in registered - {""} if value in clean] == []


def test_a_first_batch_left_empty_by_quarantine_does_not_break_the_stage(tmp_path, cli):
    """Letters are normalized ``batch_rows`` at a time; when every letter of the first batch
    has no text left (markup only), the next batches are still written and nothing is lost."""
    from tests.config_files import write_config
    dump = tmp_path / "dump.csv"
    dump.write_text("编号,内容\nE1,<b></b>\nE2,<i> </i>\nK1,路灯坏了\nK2,噪音扰民\n", encoding="utf-8")
    config = write_config(tmp_path, lambda raw: raw["normalize"].update(batch_rows=2))
    assert cli("--config", config, "ingest", dump, "--run", tmp_path / "run")[0] == 0
    code, out, err = cli("--config", config, "normalize", "--run", tmp_path / "run")
    assert code == 0, err
    assert "4 rows in, 2 out, 2 quarantined" in out
    assert pd.read_parquet(tmp_path / "run" / "normalized.parquet")[schema.LETTER_ID].tolist() == ["K1", "K2"]


def test_whitespace_is_joined_as_its_rule_says(board):
    """Whitespace runs between two Chinese characters go, others become one space, none stays
    at the ends: the rule as regular expressions, checked on every kind of whitespace and on
    real and generated letters as received (their line breaks, indents, full-width spaces)."""
    def rule(text):
        return re.sub(r"\s+", " ", re.sub(rf"(?<=[{normalize.CJK}])\s+(?=[{normalize.CJK}])", "", text)).strip()
    whitespace = [chr(code) for code in range(0x3000 + 1) if re.fullmatch(r"\s", chr(code))]
    edges = [f"{a}{space}{b}" for space in whitespace for a, b in ("征地", "A市", "市A", "12")]
    edges += ["", " ", "\n征地 \u3000拆迁\t", "a\u2028 b", "征\x1c地", "征 ,地", "豈 丽", "㐀 a"]
    letters = pd.read_csv(sample_path(), dtype=str, encoding="utf-8-sig", keep_default_na=False)
    real = pd.read_csv(board / "labeled.csv", dtype=str, keep_default_na=False)
    texts = [*edges, *letters["内容"], *(text for column in real.columns for text in real[column])]
    assert [normalize._join_spaces(text) for text in texts] == [rule(text) for text in texts]
