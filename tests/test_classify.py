"""Train, evaluate and classify: the real board file, a hand-written archive, every bad input."""
import copy
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import schema
from pipeline.classifier import predict, textmodel
from pipeline.classifier.attributes import AttributeRules
from pipeline.classifier.taxonomy import Taxonomy
from pipeline.config import PROJECT_ROOT
from pipeline.rundir import RunDir
from tests.config_files import write_config

CLASSIFY_COLUMNS = (schema.TOPIC, schema.TOPIC_CONFIDENCE, schema.TOPICS, schema.TOP3, schema.NEEDS_REVIEW,
                    schema.RESPONSIBLE_BODY, schema.NATURE, schema.LAW_LITIGATION, schema.ANONYMOUS, schema.JOINT,
                    schema.SIGNATORY_COUNT, schema.COLLECTIVE, schema.HOME_LEVEL, schema.SKIP_LEVEL)
# The board's seven first-level labels with a responsible body each (hand-written for the test).
BOARD_TAXONOMY = {"topics": [{"code": code, "zh": code, "responsible_body": f"{code}主管部门"} for code in (
    "城乡建设", "劳动和社会保障", "教育文体", "商贸旅游", "环境保护", "卫生计生", "交通运输")]}
PLACES = ["青山县", "柳溪镇", "白石村", "城关街道", "江北市", "桃源镇"]
SUBJECTS = {
    "wages": ["公司拖欠农民工工资三个月", "包工头欠薪不还", "工地老板拒付劳务费", "工厂克扣加班费"],
    "land": ["征地补偿款至今未发放", "拆迁安置房迟迟不交付", "强拆我家房屋", "补偿标准过低"],
    "noise": ["工地夜间施工噪音扰民", "饭店油烟污染严重", "化工厂偷排废气", "养殖场异味熏人"],
}


def hand_written_archive(path, rows=None):
    """A small labelled CSV: letters about wages, land and noise, some about two of them."""
    if rows is None:
        rows = []
        for i in range(24):
            topic = list(SUBJECTS)[i % 3]
            text = f"{PLACES[i % 6]}群众反映：{SUBJECTS[topic][i % 4]}，请求尽快解决。"
            label = topic
            if i % 6 == 0:
                text += "另外" + SUBJECTS["noise"][i % 4]
                label += "|noise"
            rows.append({"编号": f"T{i}", "text": text, "label": label})
    pd.DataFrame(rows).to_csv(path, index=False, encoding="utf-8-sig")
    return path


def small_config(tmp_path, **classify):
    """The project configuration with some classify settings changed (fewer folds: faster)."""
    return write_config(tmp_path, lambda raw: raw["classify"].update(classify))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A multi-label model trained through the CLI on the hand-written archive."""
    from pipeline.cli import main
    folder = tmp_path_factory.mktemp("tiny")
    data = hand_written_archive(folder / "archive.csv")
    model = folder / "model"
    assert main(["--config", str(small_config(folder, cv_folds=3)), "train", "--data", str(data),
                 "--text-col", "text", "--label-col", "label", "--label-sep", "|", "--model", str(model)]) == 0
    return model


@pytest.fixture(scope="module")
def board_model(board, tmp_path_factory):
    """A model trained through the CLI on the real labeled.csv as it is (3-fold CV)."""
    from pipeline.cli import main
    folder = tmp_path_factory.mktemp("board_model")
    taxonomy = folder / "taxonomy.yaml"
    taxonomy.write_text(yaml.safe_dump(BOARD_TAXONOMY, allow_unicode=True), encoding="utf-8")
    model = folder / "model"
    assert main(["--config", str(small_config(folder, cv_folds=3)), "train", "--data", str(board / "labeled.csv"),
                 "--text-col", "text", "--label-col", "label", "--taxonomy", str(taxonomy),
                 "--model", str(model)]) == 0
    return model


def card(model):
    return json.loads((Path(model) / textmodel.CARD_FILE).read_text(encoding="utf-8"))


# --- training on the real board ------------------------------------------------------------

def test_board_model_cross_validates_above_the_floor(board_model):
    info = card(board_model)
    cv = info["cross_validation"]
    assert cv["folds"] == 3 and cv["rows"] == 1838
    assert cv["macro_f1"] > 0.87 and cv["accuracy"] > 0.88
    assert set(cv["per_label"]) == {t["code"] for t in BOARD_TAXONOMY["topics"]}
    assert info["label_counts"]["劳动和社会保障"] == 418 and sum(info["label_counts"].values()) == 1838
    assert len(info["data"]["files"][0]["sha256"]) == 64
    assert info["versions"]["scikit-learn"] == textmodel.library_versions()["scikit-learn"]
    review = info["review"]
    assert 0 < review["threshold"] < 1 and review["precision"] >= review["target_precision"]
    assert "petition train --data" in info["train_command"]
    assert (board_model / "cv_confusion.png").stat().st_size > 1000
    assert (board_model / textmodel.MODEL_FILE).stat().st_size < 20_000_000


def test_classify_fills_every_column_for_every_row(board_run, board_model, tmp_path, cli):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(board_run / "segmented.parquet", run)  # the shared run stays as other tests expect it
    code, out, err = cli("classify", "--run", run, "--model", board_model)
    assert code == 0, err
    letters = pd.read_parquet(run / "classified.parquet")
    segmented = pd.read_parquet(run / "segmented.parquet")
    assert f"classify: {len(segmented)} rows in, {len(segmented)} out, 0 quarantined" in out
    assert len(letters) == len(segmented) > 4000
    assert not letters[list(CLASSIFY_COLUMNS)].isna().any().any()
    labels = set(card(board_model)["labels"])
    assert set(letters[schema.TOPIC]) <= labels
    assert letters[schema.TOPIC_CONFIDENCE].between(0, 1).all()
    assert (letters[schema.TOPICS].str.split("|").str[0] == letters[schema.TOPIC]).all()
    top3 = letters[schema.TOP3].map(json.loads)
    assert (top3.map(len) == 3).all() and (top3.str[0].str[0] == letters[schema.TOPIC]).all()
    assert (letters[schema.RESPONSIBLE_BODY] == letters[schema.TOPIC] + "主管部门").all()
    assert 0 < letters[schema.NEEDS_REVIEW].mean() < 0.5
    assert set(letters[schema.NATURE]) <= {"申诉", "举报控告", "求决", "咨询", "意见建议"}
    assert "classify" in RunDir(run).manifest()["stages"]


def test_the_rules_name_the_nature_where_the_nature_model_is_unsure(board_run, config):
    """The nature model's answer where its confidence reaches its card's threshold, the rules'
    elsewhere (raised here so that the model is unsure of some of the board's letters)."""
    letters = pd.read_parquet(board_run / "segmented.parquet").head(600)
    model, topic_card = textmodel.load_model(PROJECT_ROOT / config.classify.model_dir)
    nature, nature_card = predict.load_nature_model(PROJECT_ROOT / config.classify.model_dir)
    proba = textmodel.predict_proba(nature, letters[schema.CLEAN_TEXT].tolist())
    threshold = float(np.quantile(proba.max(axis=1), 0.5))
    nature_card = copy.deepcopy(nature_card)
    nature_card["review"]["threshold"] = threshold
    rules = AttributeRules.load(config.classify.attributes)
    answers = predict.classify_letters(letters, model, topic_card, rules, nature=(nature, nature_card),
                                       processes=2, chunk_size=100)[schema.NATURE]
    sure = proba.max(axis=1) >= threshold
    assert 0 < sure.sum() < len(letters)
    assert answers[sure].tolist() == [nature_card["labels"][j] for j in proba[sure].argmax(axis=1)]
    assert answers[~sure].tolist() == [rules.nature(text) for text in letters[schema.CLEAN_TEXT][~sure]]


def test_classify_in_batches_answers_as_in_one(board_run, board_model, tmp_path, cli):
    answers = []
    for name, config in (("whole", []), ("batched", ["--config", small_config(tmp_path, batch_rows=1000)])):
        run = tmp_path / name
        run.mkdir()
        shutil.copy(board_run / "segmented.parquet", run)
        code, out, err = cli(*config, "classify", "--run", run, "--model", board_model)
        assert code == 0, err
        answers.append((pd.read_parquet(run / "classified.parquet"), out.split("classify: ")[1]))
    pd.testing.assert_frame_equal(*(frame for frame, _ in answers))
    assert len(answers[0][0]) > 4000 and answers[0][1].split(" s")[1:] == answers[1][1].split(" s")[1:]


def test_model_trained_on_generated_letters_is_announced_and_reviewed_at_its_threshold(
        board_run, tiny_model, tmp_path, cli):
    from pipeline.classify import GENERATED_NOTE, recorded_notice
    from pipeline.synth.modelcard import mark_generated
    model, run = tmp_path / "model", tmp_path / "run"
    shutil.copytree(tiny_model, model)
    run.mkdir()
    shutil.copy(board_run / "segmented.parquet", run)
    config = small_config(tmp_path, generated_review_threshold=0.97)
    code, out, err = cli("--config", config, "classify", "--run", run, "--model", model)
    assert code == 0, err
    plain = pd.read_parquet(run / "classified.parquet")
    assert GENERATED_NOTE not in out and recorded_notice(RunDir(run)) is None
    mark_generated(model, "python -m pipeline.synth --training --n 10 --seed 1")
    code, out, err = cli("--config", config, "classify", "--run", run, "--model", model)
    assert code == 0, err
    letters = pd.read_parquet(run / "classified.parquet")
    assert (letters[schema.NEEDS_REVIEW] == (letters[schema.TOPIC_CONFIDENCE] < 0.97)).all()
    assert letters[schema.NEEDS_REVIEW].sum() > plain[schema.NEEDS_REVIEW].sum()
    assert "trained on generated letters" in out and "petition train" in recorded_notice(RunDir(run))


def test_evaluate_a_saved_model_prints_one_json_object(board, board_model, tmp_path, cli):
    code, out, err = cli("evaluate", "--model", board_model, "--data", board / "labeled.csv", "--json",
                         "--out", tmp_path / "eval")
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["rows"] == 1838 and metrics["accuracy"] > 0.95  # its own training data
    assert set(metrics["per_label"]["交通运输"]) == {"precision", "recall", "f1", "support"}
    assert len(metrics["confusion"]["matrix"]) == 7
    assert (tmp_path / "eval" / "confusion.csv").exists() and (tmp_path / "eval" / "confusion.png").exists()


# --- the hand-written archive: multi-label, cross-validated evaluate, the saved Pipeline -------------

def test_multilabel_model(tiny_model):
    info = card(tiny_model)
    assert info["multilabel"] and info["labels"] == ["land", "noise", "wages"]
    assert info["label_counts"]["noise"] == 12
    assert info["taxonomy"]["noise"]["responsible_body"] == ""  # labels used as they come
    model, _ = textmodel.load_model(tiny_model)
    proba = model.predict_proba(["柳溪镇群众反映：公司拖欠农民工工资，另外工地夜间施工噪音扰民"])[0]
    assert proba.shape == (3,) and proba.argmin() == info["labels"].index("land")


def test_models_sharing_a_text_step_predict_as_each_alone(board, board_model, config):
    """The topic and nature models segment once between them, with the answers each gives alone;
    a model with another text step still gets its own."""
    texts = pd.read_csv(board / "labeled.csv")["text"].head(300).tolist()
    topic, _ = textmodel.load_model(board_model)
    nature, _ = predict.load_nature_model(config.classify.model_dir)
    shorter = copy.deepcopy(nature)
    shorter[0].set_params(max_chars=60)
    assert textmodel._text_step_key(topic) == textmodel._text_step_key(nature) != textmodel._text_step_key(shorter)
    together = textmodel.predict_probas([topic, nature, shorter], texts, processes=2, chunk_size=100)
    assert (together[1] != together[2]).any()
    for model, proba in zip((topic, nature, shorter), together):
        assert proba.shape == (len(texts), len(model.classes_))
        assert (proba == textmodel.predict_proba(model, texts)).all()


def test_topics_are_the_top_label_and_every_label_over_its_threshold():
    labels = ["land", "noise", "wages"]
    proba = pd.DataFrame([[0.1, 0.5, 0.7], [0.2, 0.3, 0.1], [0.9, 0.6, 0.65]]).to_numpy()
    sets = textmodel.topic_sets(proba, labels, {"land": 0.5, "noise": 0.4, "wages": 0.7})
    assert sets == [["wages", "noise"], ["noise"], ["land", "noise"]]


def test_saved_pipeline_does_not_pickle_the_tokenizer(tiny_model):
    model, _ = textmodel.load_model(tiny_model)
    before = model.predict_proba(["城关街道群众反映：征地补偿款至今未发放"])
    assert model.named_steps["text"]._loaded is not None
    blob = pickle.dumps(model)
    assert len(blob) < 2_000_000  # jieba's dictionary alone would be tens of megabytes
    again = pickle.loads(blob)
    assert getattr(again.named_steps["text"], "_loaded", None) is None
    assert "_stacked" in model[-1].__dict__ and "_stacked" not in again[-1].__dict__  # nor stacked coefficients
    assert (again.predict_proba(["城关街道群众反映：征地补偿款至今未发放"]) == before).all()


def test_letter_text_cleans_segments_and_truncates(config):
    step = textmodel.LetterText.from_config(config).fit()
    out = step.transform(["徵地拆遷補償款至今未發\n放，村民郭××反映"])
    assert out[schema.CLEAN_TEXT][0] == "征地拆迁补偿款至今未发放,村民郭某反映"
    assert "征地拆迁" in out[schema.TOKENS][0].split()
    assert out["head"][0] == out[schema.CLEAN_TEXT][0][:config.classify.head_chars]
    short = step.set_params(max_chars=6).transform(["徵地拆遷補償款至今未發放"])
    assert short[schema.CLEAN_TEXT][0] == "征地拆迁补偿"


def test_evaluate_cross_validated(tmp_path, cli):
    data = hand_written_archive(tmp_path / "archive.csv")
    code, out, err = cli("evaluate", "--data", data, "--cv", "2", "--label-sep", "|", "--json", "--out", tmp_path)
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["folds"] == 2 and metrics["rows"] == 24 and 0 <= metrics["macro_f1"] <= 1


def test_labels_from_a_second_file_joined_on_the_letter_id(tmp_path, cli):
    archive = pd.read_csv(hand_written_archive(tmp_path / "archive.csv"))
    archive[["编号", "text"]].to_csv(tmp_path / "letters.csv", index=False)
    archive.rename(columns={"编号": "letter_id"})[["letter_id", "label"]].iloc[::-1].to_json(
        tmp_path / "truth.jsonl", orient="records", lines=True, force_ascii=False)
    code, _, err = cli("--config", small_config(tmp_path, cv_folds=2), "train", "--data", tmp_path / "letters.csv",
                       "--labels", tmp_path / "truth.jsonl", "--text-col", "text", "--label-col", "label",
                       "--label-sep", "|", "--model", tmp_path / "model")
    assert code == 0, err
    assert card(tmp_path / "model")["label_counts"] == {"noise": 12, "land": 8, "wages": 8}


# --- the default model ----------------------------------------------------------------------------------

def test_default_model_is_committed_small_and_says_how_it_was_trained(config):
    folder = config.classify.model_dir
    if not (folder / textmodel.CARD_FILE).exists():
        pytest.skip("default model not trained yet (make train)")
    model, info = textmodel.load_model(folder)
    assert "generated letters" in info["description"] and "petition train --data" in info["description"]
    assert info["trained_on"] == "generated" and "petition train" in info["train_on_own_archive"]
    assert info["multilabel"]
    # every label is a class of the national taxonomy (first level, or a path under it)
    taxonomy = Taxonomy.load(config.classify.taxonomy)
    assert set(info["labels"]) <= set(taxonomy.topics), "retrain the default model on the new taxonomy (make train)"
    assert {label.split("/")[0] for label in info["labels"]} == set(taxonomy.level1())
    assert all(info["taxonomy"][code]["responsible_body"] for code in info["labels"])
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    assert size < 25_000_000  # two levels, 50 classes of the national classification: about 21 MB
    assert model.predict(["村里征地补偿款至今未发放，拆迁安置房迟迟不交付", "小区楼下烧烤店油烟直排，噪音扰民到凌晨",
                          "学校强制学生购买教辅资料"]).tolist() == ["国土资源/征地拆迁", "环境保护/环境污染", "教育文体/教育收费"]


# --- bad input: one clear line, exit status 2, no traceback ------------------------------------

def expect_error(cli, args, *fragments):
    code, _, err = cli(*args)
    assert code == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def test_label_with_fewer_than_two_examples(tmp_path, cli):
    rows = [{"text": f"反映拖欠工资问题{i}", "label": "wages"} for i in range(5)] + [{"text": "噪音扰民", "label": "noise"}]
    data = hand_written_archive(tmp_path / "a.csv", rows)
    expect_error(cli, ["train", "--data", data, "--text-col", "text", "--label-col", "label", "--model", tmp_path / "m"],
                 "fewer than 2 examples", "noise (1)")


def test_empty_texts(tmp_path, cli):
    data = hand_written_archive(tmp_path / "a.csv", [{"text": "", "label": "wages"}, {"text": " ", "label": "noise"}])
    expect_error(cli, ["train", "--data", data, "--text-col", "text", "--label-col", "label", "--model", tmp_path / "m"],
                 "no row has both text")


def test_missing_column(tmp_path, cli):
    data = hand_written_archive(tmp_path / "a.csv")
    expect_error(cli, ["train", "--data", data, "--text-col", "内容", "--label-col", "label", "--model", tmp_path / "m"],
                 "no column '内容'", "text")
    expect_error(cli, ["evaluate", "--data", data, "--cv", "2", "--label-col", "类别"], "no column '类别'")


def test_labels_outside_the_taxonomy(tmp_path, cli):
    data = hand_written_archive(tmp_path / "a.csv")
    expect_error(cli, ["train", "--data", data, "--text-col", "text", "--label-col", "label", "--label-sep", "|",
                       "--taxonomy", PROJECT_ROOT / "corpora" / "taxonomy.yaml", "--model", tmp_path / "m"],
                 "labels not in the taxonomy: land, noise, wages")


def test_model_saved_by_another_library_version(tiny_model, tmp_path, cli):
    copy = tmp_path / "old_model"
    shutil.copytree(tiny_model, copy)
    info = card(copy)
    info["versions"]["scikit-learn"] = "1.4.2"
    (copy / textmodel.CARD_FILE).write_text(json.dumps(info), encoding="utf-8")
    data = hand_written_archive(tmp_path / "a.csv")
    expect_error(cli, ["evaluate", "--model", copy, "--data", data], "other library versions",
                 "scikit-learn 1.4.2 (installed: ", "retrain")


def test_unknown_model_path(tmp_path, cli):
    run = tmp_path / "run"
    expect_error(cli, ["classify", "--run", run, "--model", tmp_path / "no_such_model"], "no model there")
    data = hand_written_archive(tmp_path / "a.csv")
    expect_error(cli, ["evaluate", "--model", tmp_path / "no_such_model", "--data", data], "no model there")


def test_classify_before_segment(tiny_model, tmp_path, cli):
    expect_error(cli, ["classify", "--run", tmp_path / "run", "--model", tiny_model], "no segment output")
