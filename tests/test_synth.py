"""Tests of pipeline.synth: determinism, the committed sample, and the planted truth."""
import json
import random
import re
from pathlib import Path

import pandas as pd
import pytest

from pipeline import schema
from pipeline.synth.__main__ import main
from pipeline.synth.draws import id_checksum
from pipeline.synth.output import generate
from pipeline.synth.phrases import compile_template, expand
from pipeline.synth.settings import CHANNELS, HEADERS, MALFORMED, NATURES, PATTERNS, RELATIONS
from pipeline.synth.world import load_world

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = ROOT / "corpora" / "sample"
SAMPLE_N, SAMPLE_SEED = 5000, 20241
TRUTH_FILES = ("letters.csv", "truth_letters.csv", "truth_pairs.csv")
LARGE_TOPICS = ("国土资源/征地拆迁", "农村农业/土地承包经营", "政法/涉法涉诉·法院",
                "劳动和社会保障/劳动社保", "城乡建设/住房保障与房地产")


@pytest.fixture(scope="module")
def world():
    return load_world()


@pytest.fixture(scope="module")
def sample():
    """The committed sample: letters joined with their truth rows, and the pairs."""
    letters = pd.read_csv(SAMPLE_DIR / "letters.csv", dtype=str, keep_default_na=False)
    truth = pd.read_csv(SAMPLE_DIR / "truth_letters.csv", dtype=str, keep_default_na=False)
    pairs = pd.read_csv(SAMPLE_DIR / "truth_pairs.csv", dtype=str, keep_default_na=False)
    return letters, truth, pairs


def _generate(world, folder, n, seed):
    generate(n, seed, folder / "letters.csv", progress=False, world=world)
    return {name: (folder / name).read_bytes() for name in TRUTH_FILES}


def _trigrams(text):
    return {text[i:i + 3] for i in range(len(text) - 2)}


def _jaccard(a, b):
    a, b = _trigrams(a), _trigrams(b)
    return len(a & b) / max(1, len(a | b))


# --- determinism ------------------------------------------------------------------------
def test_same_seed_gives_identical_files(world, tmp_path):
    first = _generate(world, tmp_path / "a", 300, 7)
    second = _generate(world, tmp_path / "b", 300, 7)
    assert first == second
    other = _generate(world, tmp_path / "c", 300, 8)
    assert other["letters.csv"] != first["letters.csv"]


def test_committed_sample_equals_fresh_generation(world, tmp_path):
    fresh = _generate(world, tmp_path, SAMPLE_N, SAMPLE_SEED)
    for name in TRUTH_FILES:
        assert fresh[name] == (SAMPLE_DIR / name).read_bytes(), name


def test_parquet_output_and_cli(tmp_path, capsys):
    out = tmp_path / "letters.parquet"
    assert main(["--n", "60", "--seed", "3", "--out", str(out),
                 "--truth-dir", str(tmp_path / "truth")]) == 0
    letters = pd.read_parquet(out)
    assert list(letters.columns) == list(HEADERS) and len(letters) == 60
    assert (tmp_path / "truth" / "truth_pairs.csv").exists()
    assert "pattern original" in capsys.readouterr().out


# --- the letters file -------------------------------------------------------------------
def test_headers_map_to_every_schema_column():
    mapping, unmapped = schema.map_columns(HEADERS)
    assert not unmapped
    assert set(mapping.values()) == set(schema.SCHEMA_COLUMNS)


def test_sample_covers_topics_channels_levels_natures(sample, world):
    letters, truth, _ = sample
    topics = {path for value in truth.topics for path in value.split("|")}
    assert topics == {cfg["path"] for cfg in world.topic_cfg} and len(topics) == 20
    assert set(CHANNELS) <= set(letters["信访形式"])
    assert set(letters["受理层级"]) == set(schema.LEVELS)
    assert set(truth.nature) == set(NATURES)
    assert set(truth.pattern) == set(PATTERNS)
    assert set(truth.malformed) == set(MALFORMED)


def test_body_lengths(sample):
    letters, truth, _ = sample
    lengths = letters.loc[truth.malformed == "", "内容"].str.len()
    assert lengths.between(80, 1500).all()
    assert 250 <= lengths.median() <= 450


def test_letters_of_a_topic_do_not_share_one_template(sample):
    letters, truth, _ = sample
    primary = truth.topics.str.split("|").str[0]
    for topic in LARGE_TOPICS:
        openings = letters.loc[(primary == topic) & (truth.malformed == ""), "内容"]
        openings = openings.str.strip().str[:20]
        assert openings.nunique() >= 0.5 * len(openings), topic


def test_id_numbers_and_phones_are_valid(sample):
    letters, _, _ = sample
    ids = letters.loc[letters["身份证号"] != "", "身份证号"]
    assert len(ids) > 1000
    for number in ids:
        assert re.fullmatch(r"\d{17}[\dX]", number), number
        assert id_checksum(number[:17]) == number[17], number
    phones = letters.loc[letters["联系电话"] != "", "联系电话"]
    assert phones.str.fullmatch(r"1\d{10}").all()


def test_id_checksum_of_the_standard_example():
    assert id_checksum("11010519491231002") == "X"


def test_identifiers_in_text_are_really_there(sample):
    letters, truth, _ = sample
    flagged = letters.loc[truth.identifiers_in_text == "1", "内容"]
    assert len(flagged) > 100
    digits = flagged.str.translate({c + 0xFEE0: c for c in range(0x30, 0x3A)})
    assert digits.str.contains(r"1\d{10}|\d{17}[\dX]").all()


# --- the truth --------------------------------------------------------------------------
def test_truth_rows_match_letter_rows(sample):
    letters, truth, pairs = sample
    assert list(truth.letter_id) == list(letters["信件编号"])
    ids = set(letters["信件编号"])
    assert set(pairs.letter_a) <= ids and set(pairs.letter_b) <= ids


def test_planted_shares(sample):
    _, truth, _ = sample
    share = truth.pattern.value_counts(normalize=True)
    copies = share[["exact_copy", "multi_addressed", "resend"]].sum()
    assert 0.07 <= copies <= 0.13
    assert 0.07 <= share["repeat_petition"] <= 0.13
    assert 0.05 <= share["same_matter"] <= 0.11
    assert 0.002 <= (truth.malformed != "").mean() <= 0.01
    assert (truth.anonymous == "1").sum() > 100 and (truth.traditional == "1").sum() > 50
    assert (truth.signatories.astype(int) > 0).sum() > 50
    assert (truth.visitors.astype(int) >= 5).sum() > 20
    assert truth.topics.str.contains("|", regex=False).sum() > 200


def test_pairs_follow_their_definitions(sample):
    letters, truth, pairs = sample
    rows = letters.join(truth.drop(columns="letter_id")).drop_duplicates("信件编号")
    rows = rows.set_index("信件编号")
    position = {letter_id: k for k, letter_id in enumerate(letters["信件编号"])}
    a, b = rows.loc[pairs.letter_a].reset_index(), rows.loc[pairs.letter_b].reset_index()
    assert (a.matter_id == b.matter_id).all()
    assert all(position[x] < position[y] for x, y in zip(pairs.letter_a, pairs.letter_b))
    relation = pairs.relation.to_numpy()
    same_body = (a["内容"] == b["内容"]).to_numpy()
    same_addressee = (a["受理机关"] == b["受理机关"]).to_numpy()
    same_person = ((a.person_id == b.person_id) & (a.person_id != "")).to_numpy()
    assert same_body[relation == "exact_copy"].all()
    assert not same_body[relation == "multi_addressed"].any()
    assert not same_addressee[relation == "multi_addressed"].any()
    assert same_person[relation == "repeat_petition"].all()
    assert not same_person[relation == "same_matter"].any()
    assert set(relation) == set(RELATIONS)


def test_repeat_petitions_are_reworded(sample):
    letters, truth, pairs = sample
    body = dict(zip(letters["信件编号"], letters["内容"]))
    repeats = pairs[pairs.relation == "repeat_petition"]
    scores = [_jaccard(body[a], body[b]) for a, b in zip(repeats.letter_a, repeats.letter_b)]
    assert len(scores) > 200
    assert max(scores) < 0.8
    assert sum(scores) / len(scores) < 0.35
    copies = pairs[pairs.relation == "multi_addressed"]
    near = [_jaccard(body[a], body[b]) for a, b in zip(copies.letter_a, copies.letter_b)]
    assert sum(near) / len(near) > 0.85


def test_skip_level_follows_its_definition(sample):
    letters, truth, _ = sample
    rank = {level: k for k, level in enumerate(schema.LEVELS)}
    addressee = letters["受理层级"].map(rank)
    home = truth.home_level.map(rank).clip(lower=rank["county"])
    assert ((addressee > home).astype(int).astype(str) == truth.skip_level).all()


# --- templates --------------------------------------------------------------------------
def test_template_language():
    node = compile_template("[甲|乙[丙|]]<who>{name}")
    banks = {"who": (compile_template("村民"),)}
    seen = {expand(node, random.Random(seed), banks) for seed in range(50)}
    assert seen == {"甲村民{name}", "乙丙村民{name}", "乙村民{name}"}
    with pytest.raises(ValueError):
        compile_template("[甲|乙")


# --- training corpora -------------------------------------------------------------------
FIRST_LEVEL = ("城乡建设", "农村农业", "政法", "教育文体", "劳动和社会保障", "民政", "党务政务", "经济管理",
               "卫生计生", "商贸旅游", "环境保护", "交通运输", "纪检监察", "国土资源", "科技与信息产业")
NATIONAL = ROOT.parent / "shared" / "corpora" / "messageboard" / "taxonomy_3level.xlsx"


def test_training_world_keeps_the_sample_topics_first(world):
    training = load_world(training=True)
    assert training.topics[:len(world.topics)] == world.topics
    assert [cfg["path"] for cfg in training.topic_cfg[:len(world.topics)]] == [cfg["path"] for cfg in world.topic_cfg]
    assert len(training.topics) > len(world.topics)


def test_training_corpus_covers_every_first_level_class(tmp_path):
    assert main(["--training", "--n", "2000", "--seed", "5", "--out", str(tmp_path / "letters.csv")]) == 0
    truth = pd.read_csv(tmp_path / "truth_letters.csv", dtype=str, keep_default_na=False)
    paths = {path for value in truth.topics for path in value.split("|")}
    assert {path.split("/")[0] for path in paths} == set(FIRST_LEVEL)
    assert all(path.count("/") == 1 for path in paths)
    primary = truth.topics.str.split("|").str[0].str.split("/").str[0]
    assert primary.value_counts().min() >= 10          # no class is a token presence
    letters = pd.read_csv(tmp_path / "letters.csv", dtype=str, keep_default_na=False)
    for first in ("交通运输", "教育文体", "商贸旅游"):  # classes the sample's topics lack
        # first letters only: copies, resends and reminders repeat their letter's title
        titles = letters.loc[(primary == first) & (truth.malformed == "") & (truth.pattern == "original"), "标题"]
        assert titles.nunique() >= 0.8 * len(titles), first


@pytest.mark.skipif(not NATIONAL.exists(), reason=f"{NATIONAL} (the national classification) is absent")
def test_training_paths_are_national_second_level_or_office_topics(world):
    national = pd.read_excel(NATIONAL, engine="openpyxl")
    second = set(national["一级分类"] + "/" + national["二级分类"])
    office = {cfg["path"] for cfg in world.topic_cfg}     # the sample's topics: the office topics
    training = load_world(training=True)
    assert {cfg["path"] for cfg in training.topic_cfg} - office <= second


def test_generated_model_card_is_announced(tmp_path):
    from pipeline.classify import generated_model_notice
    from pipeline.reporting.narrative import model_paragraphs
    from pipeline.synth.modelcard import mark_generated
    card = {"labels": ["城乡建设/城乡规划"], "review": {"threshold": 0.5}}
    (tmp_path / "model_card.json").write_text(json.dumps(card), encoding="utf-8")
    assert generated_model_notice(card, tmp_path) is None and model_paragraphs(None) == []
    marked = mark_generated(tmp_path, "python -m pipeline.synth --training --n 10 --seed 1")
    assert json.loads((tmp_path / "model_card.json").read_text(encoding="utf-8")) == marked
    notice = generated_model_notice(marked, tmp_path)
    assert "generated letters" in notice and "petition train" in notice
    assert "模拟来信" in model_paragraphs(notice)[0]
