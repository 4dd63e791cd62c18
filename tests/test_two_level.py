"""The national two-level taxonomy, two-level training and evaluation, and topic corrections
from analysts' decisions, on real board letters (labeled.csv: first-level labels) with a few
second-level labels given by hand."""
import json

import numpy as np
import pandas as pd
import pytest

from pipeline.classifier import hierarchy, textmodel
from pipeline.classifier.taxonomy import Taxonomy, level_label
from pipeline.config import PROJECT_ROOT
from pipeline.decisions import DecisionStore
from tests.config_files import write_config

TAXONOMY = PROJECT_ROOT / "corpora" / "taxonomy.yaml"
SCRIPT = PROJECT_ROOT / "scripts" / "national_taxonomy.py"
# the old office topic codes and their fixed places in the national classification
TOPIC_MAP = {"land_requisition": "国土资源/征地拆迁", "rural_land": "农村农业/土地承包经营",
             "court": "政法/涉法涉诉·法院", "personnel": "劳动和社会保障/人事待遇",
             "military_veterans": "民政/涉军优抚", "consultation_other": "党务政务/咨询及其他"}
FIRST_LEVEL = ["城乡建设", "农村农业", "政法", "教育文体", "劳动和社会保障", "民政", "党务政务", "经济管理", "卫生计生",
               "商贸旅游", "环境保护", "交通运输", "纪检监察", "国土资源", "科技与信息产业"]


def run_script(*args):
    from scripts.national_taxonomy import main
    return main([str(a) for a in args])


# --- the taxonomy -------------------------------------------------------------------------------

def test_committed_taxonomy_is_the_national_table_converted(board, tmp_path, capsys):
    out = tmp_path / "taxonomy.yaml"
    assert run_script(board / "taxonomy_3level.xlsx", "--out", out) == 0
    assert "15 first-level and 129 second-level classes" in capsys.readouterr().out
    assert out.read_text(encoding="utf-8") == TAXONOMY.read_text(encoding="utf-8")  # committed = regenerated
    table = pd.read_excel(board / "taxonomy_3level.xlsx", engine="openpyxl")
    taxonomy = Taxonomy.load(TAXONOMY)
    assert taxonomy.level1() == FIRST_LEVEL
    for first in FIRST_LEVEL:
        topic = taxonomy.topics[first]
        assert topic.code and topic.en and topic.responsible_body and len(topic.keywords) >= 15
    national = {f"{a}/{b}" for a, b in zip(table["一级分类"], table["二级分类"])}
    assert national <= set(taxonomy.topics)
    # third-level names are keywords of their second level
    assert {"噪音污染", "电磁污染"} <= set(taxonomy.topics["环境保护/环境污染"].keywords)


def test_office_topics_sit_where_the_topic_map_puts_them():
    taxonomy = Taxonomy.load(TAXONOMY)
    for code, path in TOPIC_MAP.items():
        assert taxonomy.code_for(code) == path and taxonomy.topics[path].code == code
        assert taxonomy.topics[path].responsible_body and taxonomy.topics[path].keywords
    assert taxonomy.code_for("征地拆迁") == "国土资源/征地拆迁"      # a unique second-level name
    assert taxonomy.code_for("安全生产") is None                    # under 城乡建设 and 经济管理
    assert taxonomy.code_for("urban_rural_development") == "城乡建设"
    # a second-level class without a body of its own is routed as its first level
    assert taxonomy.topics["政法/诉讼"].responsible_body == taxonomy.topics["政法"].responsible_body


def test_the_conversion_refuses_a_table_it_cannot_read(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"一级分类": ["城乡建设"], "分类": ["x"]}).to_csv(bad, index=False)
    assert run_script(bad, "--out", tmp_path / "t.yaml") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no column 二级分类, 三级分类" in err
    pd.DataFrame({"一级分类": ["海洋"], "二级分类": ["渔业"], "三级分类": ["其他"]}).to_csv(bad, index=False)
    assert run_script(bad, "--out", tmp_path / "t.yaml") == 2
    assert "first-level classes not in taxonomy_sources.yaml: 海洋" in capsys.readouterr().err
    assert not (tmp_path / "t.yaml").exists()


# --- two-level training --------------------------------------------------------------------------

def board_dump(board, path, per_label=25):
    """``per_label`` board letters of each label, with a letter id; 交通运输 letters about taxis
    and buses get the second-level labels 交通运输/出租车管理 and 交通运输/客货运输."""
    frame = pd.read_csv(board / "labeled.csv").groupby("label").head(per_label).reset_index(drop=True)
    frame.insert(0, "信件编号", [f"B{i}" for i in range(len(frame))])
    transport = frame["label"] == "交通运输"
    frame.loc[transport & frame["text"].str.contains("出租|的士|网约"), "label"] = "交通运输/出租车管理"
    frame.loc[transport & frame["text"].str.contains("公交|客运"), "label"] = "交通运输/客货运输"
    frame.to_csv(path, index=False, encoding="utf-8-sig")
    return frame


@pytest.fixture(scope="module")
def two_level(board, tmp_path_factory):
    """A model trained through the CLI on a small dump with first- and second-level labels."""
    from pipeline.cli import main
    folder = tmp_path_factory.mktemp("two_level")
    frame = board_dump(board, folder / "dump.csv")
    config = write_config(folder, lambda raw: raw["classify"].update(cv_folds=3))
    assert main(["--config", str(config), "train", "--data", str(folder / "dump.csv"), "--text-col", "text",
                 "--label-col", "label", "--taxonomy", str(TAXONOMY), "--model", str(folder / "model")]) == 0
    return folder, frame, config


def test_two_level_model_answers_under_its_first_level_answer(two_level):
    folder, frame, _ = two_level
    model, card = textmodel.load_model(folder / "model")
    labels = card["labels"]
    assert "交通运输/出租车管理" in labels and "交通运输/客货运输" in labels
    assert "交通运输" not in labels and "城乡建设" in labels   # leaves: second level where trained
    assert card["cross_validation"]["level"] == 1 and set(card["cross_validation"]["per_label"]) == {
        level_label(label, 1) for label in labels}
    level2 = card["cross_validation_level2"]
    assert level2["rows"] == frame["label"].str.contains("/").sum() and set(level2["per_label"]) == {
        "交通运输/出租车管理", "交通运输/客货运输"}
    assert card["taxonomy"]["交通运输/出租车管理"]["responsible_body"] == Taxonomy.load(TAXONOMY).topics[
        "交通运输"].responsible_body
    proba = model.predict_proba(frame["text"].tolist())
    # the leaves under a first-level class add up to its probability
    assert np.allclose(proba.sum(axis=1), 1)
    answers = hierarchy.best_leaves(proba, labels)
    first = {label: [j for j, leaf in enumerate(labels) if level_label(leaf, 1) == label]
             for label in dict.fromkeys(level_label(leaf, 1) for leaf in labels)}
    best_first = [max(first, key=lambda label: p[first[label]].sum()) for p in proba]
    assert [level_label(labels[j], 1) for j in answers] == best_first
    assert (np.array(labels, dtype=object)[answers] == model.predict(frame["text"].tolist())).all()


def evaluate_json(cli, *args):
    code, out, err = cli("evaluate", "--json", *args)
    assert code == 0, err
    return json.loads(out)


def test_evaluate_scores_either_level_and_two_label_columns_make_paths(two_level, tmp_path, cli):
    folder, frame, _ = two_level
    split = frame["label"].str.split("/", expand=True).fillna("")
    frame.assign(一级=split[0], 二级=split[1]).drop(columns="label").to_csv(tmp_path / "two.csv", index=False)
    common = ("--model", folder / "model", "--text-col", "text", "--out", tmp_path / "eval")
    by_path = evaluate_json(cli, *common, "--data", folder / "dump.csv", "--label-col", "label", "--level", "2")
    by_columns = evaluate_json(cli, *common, "--data", tmp_path / "two.csv", "--label-col", "一级",
                               "--label-col", "二级", "--level", "2")
    assert by_path["level"] == 2 and by_path["rows"] == frame["label"].str.contains("/").sum()
    assert {key: by_path[key] for key in ("rows", "macro_f1", "per_label")} == {
        key: by_columns[key] for key in ("rows", "macro_f1", "per_label")}
    first = evaluate_json(cli, *common, "--data", folder / "dump.csv", "--label-col", "label", "--level", "1")
    assert first["level"] == 1 and first["rows"] == len(frame) and len(first["per_label"]) == 7
    assert first["accuracy"] > 0.9  # its own training letters
    review = first["review"]
    assert review["errors"] == round((1 - first["accuracy"]) * len(frame))
    assert 0 <= review["letters_flagged"] <= 1 and review["threshold"] == textmodel.load_model(folder / "model")[1][
        "review"]["threshold"]
    frame[~frame["label"].str.contains("/")].to_csv(tmp_path / "first_only.csv", index=False)
    code, _, err = cli("evaluate", *common, "--data", tmp_path / "first_only.csv", "--label-col", "label",
                       "--level", "2")
    assert code == 2 and "no letter of the file has a second-level label" in err and err.count("\n") == 1


# --- corrections from the decisions store ------------------------------------------------------------

def test_a_topic_correction_changes_the_retrained_answer_on_that_letter(board, two_level, tmp_path, cli):
    from pipeline.train import train_command
    from pipeline.config import load_config
    folder, frame, config_path = two_level
    model, card = textmodel.load_model(folder / "model")
    proba = model.predict_proba(frame["text"].tolist())
    ranked = np.sort(proba, axis=1)
    letter = int(np.argmin(ranked[:, -1] - ranked[:, -2]))   # the letter the model is least sure of
    before = model.predict([frame["text"][letter]])[0]
    other = next(label for label in card["labels"][::-1] if level_label(label, 1) != level_label(before, 1))
    home = tmp_path / "home"
    code, _, err = cli("decide", "topic", frame["信件编号"][letter], other, "--home", home, "--user", "alice")
    assert code == 0, err
    DecisionStore.for_home(home).add("topic", "NOT-IN-THE-DUMP", value="城乡建设", user="alice")
    common = ["--config", config_path, "train", "--data", folder / "dump.csv", "--text-col", "text",
              "--label-col", "label", "--taxonomy", TAXONOMY]
    code, _, err = cli(*common, "--with-decisions", home, "--model", tmp_path / "corrected")
    assert code == 0, err
    assert "1 rows labelled by analysts' topic decisions (2 letters decided)" in err
    corrected, corrected_card = textmodel.load_model(tmp_path / "corrected")
    assert corrected.predict([frame["text"][letter]])[0] == other != before
    assert corrected_card["data"]["decisions"] == str(home / "decisions.sqlite")
    assert f"--with-decisions {home}" in corrected_card["train_command"]
    # the same through the function the workbench calls, with the store itself
    train_command(load_config(config_path), data=folder / "dump.csv", text_cols=["text"], label_col="label",
                  model=tmp_path / "again", taxonomy=TAXONOMY, decisions=DecisionStore.for_home(home))
    again, _ = textmodel.load_model(tmp_path / "again")
    assert again.predict([frame["text"][letter]])[0] == other


def test_corrections_need_a_letter_id(board, tmp_path, cli):
    frame = board_dump(board, tmp_path / "dump.csv", per_label=3)
    frame.drop(columns="信件编号").to_csv(tmp_path / "no_ids.csv", index=False)
    code, _, err = cli("train", "--data", tmp_path / "no_ids.csv", "--text-col", "text", "--label-col", "label",
                       "--with-decisions", tmp_path / "home", "--model", tmp_path / "m")
    assert code == 2 and "no letter id column" in err and err.count("\n") == 1


# --- speed: a run's clean_text is not cleaned twice ----------------------------------------------------

def test_a_runs_clean_text_is_prepared_as_if_cleaned_again(board_run, config):
    """normalize already cleaned ``clean_text`` with the same settings: the light re-clean gives
    the model exactly what cleaning it again gives."""
    texts = pd.read_parquet(board_run / "segmented.parquet")["clean_text"].tolist()
    step = textmodel.LetterText.from_config(config).fit()
    assert step.cleans_like(config.normalize)
    assert step.prepare(texts, cleaned=True).equals(step.prepare(texts))
    other = config.normalize.__class__(**{**config.normalize.__dict__, "mask_char": "x"})
    assert not step.cleans_like(other)


def test_a_multi_label_dump_with_path_labels_trains_on_the_national_taxonomy(tmp_path, cli):
    """What ``make train`` runs on the generated sample (``--label-col topics --label-sep '|'``,
    values like 国土资源/征地拆迁), on 240 of its letters; a sample still labelled with the old
    topic codes is mapped onto the paths the codes name."""
    from tests.conftest import sample_path
    letters = pd.read_csv(sample_path(), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    truth = pd.read_csv(sample_path().with_name("truth_letters.csv"), dtype=str, keep_default_na=False,
                        encoding="utf-8-sig")
    taxonomy = Taxonomy.load(TAXONOMY)
    truth["topics"] = truth["topics"].str.split("|").map(lambda labels: [taxonomy.code_for(x) for x in labels])
    common = truth["topics"].str[0].value_counts().index[:6]
    truth["topics"] = truth["topics"].map(lambda labels: "|".join(x for x in labels if x in common))
    chosen = truth[truth["topics"].str.split("|").str[0].isin(common)].groupby(
        truth["topics"].str.split("|").str[0]).head(40)
    chosen[["letter_id", "topics"]].to_csv(tmp_path / "truth.csv", index=False)
    letters.to_csv(tmp_path / "letters.csv", index=False)
    config = write_config(tmp_path, lambda raw: raw["classify"].update(cv_folds=2))
    code, _, err = cli("--config", config, "train", "--data", tmp_path / "letters.csv", "--labels", tmp_path / "truth.csv",
                       "--text-col", "标题", "--text-col", "内容", "--label-col", "topics", "--label-sep", "|",
                       "--taxonomy", TAXONOMY, "--model", tmp_path / "model")
    assert code == 0, err
    model, card = textmodel.load_model(tmp_path / "model")
    assert card["multilabel"] and set(card["labels"]) == set(common) and all("/" in label for label in common)
    assert card["cross_validation_level2"]["rows"] == card["data"]["rows"] >= len(chosen)  # every letter has a path
    assert all(card["taxonomy"][label]["responsible_body"] for label in card["labels"])
    sets = textmodel.topic_sets(model.predict_proba(chosen["letter_id"].map(
        letters.drop_duplicates("信件编号").set_index("信件编号")["内容"]).tolist()), card["labels"],
        card["topic_thresholds"])
    assert np.mean([s[0] == t.split("|")[0] for s, t in zip(sets, chosen["topics"])]) > 0.8


def test_attributes_in_two_processes_are_the_same(board_run, config):
    from pipeline.classifier.attributes import AttributeRules, letter_attributes
    letters = pd.read_parquet(board_run / "segmented.parquet")
    rules = AttributeRules.load(config.classify.attributes)
    assert letter_attributes(letters, rules, processes=2, chunk_size=500).equals(letter_attributes(letters, rules))
