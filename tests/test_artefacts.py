"""Damaged or foreign model and index artefacts: a one-line message naming the file and what is
wrong (exit 2), never a traceback; an index file altered in place is caught by its checksum."""
import json
import shutil

import joblib
import numpy as np
import pytest

from pipeline.config import PROJECT_ROOT
from tests.test_dedupe import LETTERS, write_dump

MODEL = PROJECT_ROOT / "models" / "default"


@pytest.fixture(scope="module")
def segmented(tmp_path_factory):
    from pipeline.cli import main
    base = tmp_path_factory.mktemp("artefacts")
    dump = write_dump(base / "letters.csv", LETTERS)
    for argv in (["ingest", dump, "--run", base / "run"], ["normalize", "--run", base / "run"],
                 ["segment", "--run", base / "run"]):
        assert main([str(a) for a in argv]) == 0
    return base / "run"


def one_line_error(result, *words):
    code, _, err = result
    assert code == 2 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err
    return err


# --- models -------------------------------------------------------------------------------------------

def damage_card(card_path, change):
    card = json.loads(card_path.read_text(encoding="utf-8"))
    change(card)
    card_path.write_text(json.dumps(card, ensure_ascii=False), encoding="utf-8")


DAMAGES = {
    "versions a string": (lambda card: card.update(versions="sklearn 1.9"), "'versions'"),
    "no labels": (lambda card: card.pop("labels"), "'labels'"),
    "labels a string": (lambda card: card.update(labels="a|b"), "'labels'"),
    "no review threshold": (lambda card: card.update(review={}), "'review'"),
    "a card that is a list": (None, "not a JSON object"),
}


@pytest.mark.parametrize("folder", ["", "nature"], ids=["topic model", "nature model"])
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_bad_model_card(cli, segmented, tmp_path, damage, folder):
    model = tmp_path / "model"
    shutil.copytree(MODEL, model)
    change, words = DAMAGES[damage]
    card = model / folder / "model_card.json"
    if change:
        damage_card(card, change)
    else:
        card.write_text("[1, 2]", encoding="utf-8")
    one_line_error(cli("classify", "--run", segmented, "--model", model), str(card), words)


def test_model_file_holding_another_object(cli, segmented, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(MODEL, model)
    joblib.dump({"weights": [1, 2, 3]}, model / "model.joblib")
    one_line_error(cli("classify", "--run", segmented, "--model", model), str(model / "model.joblib"),
                   "holds a dict", "retrain")


def test_model_and_card_of_different_labels(cli, segmented, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(MODEL, model)
    shutil.copy(MODEL / "nature" / "model.joblib", model / "model.joblib")  # 5 outputs, the card's topics
    labels = len(json.loads((MODEL / "model_card.json").read_text(encoding="utf-8"))["labels"])
    one_line_error(cli("classify", "--run", segmented, "--model", model), "5 outputs", f"{labels} labels")


# --- the dedupe index ------------------------------------------------------------------------------------

@pytest.fixture
def indexed(cli, segmented, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(segmented, run)
    assert cli("dedupe", "--run", run, "--index", tmp_path / "index")[0] == 0
    return run, tmp_path / "index"


def test_shard_entry_without_letters(cli, indexed):
    run, index = indexed
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    del manifest["shards"][0]["letters"]
    (index / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    one_line_error(cli("dedupe", "--run", run, "--index", index), "manifest.json", "'letters'", "--rebuild")


@pytest.mark.parametrize("entry", [[], "000001", {"name": "../x", "letters": 1}], ids=["list", "string", "bad name"])
def test_shard_entry_of_another_shape(cli, indexed, entry):
    run, index = indexed
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    manifest["shards"][0] = entry
    (index / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    one_line_error(cli("dedupe", "--run", run, "--index", index), "manifest.json", "--rebuild")


@pytest.mark.parametrize("name", ["text_ptr.npy", "bands.npy", "letters.parquet"])
def test_file_altered_in_place_is_caught_by_its_checksum(cli, indexed, name):
    """Same size, other bytes: the pointers of text_ptr.npy shuffled, a byte of the others."""
    run, index = indexed
    path = index / "000001" / name
    size = path.stat().st_size
    if name == "text_ptr.npy":
        pointers = np.load(path)
        np.save(path, np.random.default_rng(0).permutation(pointers))
    else:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    assert path.stat().st_size == size
    one_line_error(cli("dedupe", "--run", run, "--index", index), str(path), "checksum", "--rebuild")


def test_index_of_the_previous_format_is_refused_with_the_rebuild_command(cli, indexed):
    run, index = indexed
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    manifest["version"] = 2
    for entry in manifest["shards"]:
        entry.pop("files")
    (index / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    one_line_error(cli("dedupe", "--run", run, "--index", index), "version 2", "--rebuild")


def test_folder_that_is_not_an_index_is_refused(cli, segmented, tmp_path):
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / "notes.txt").write_text("mine", encoding="utf-8")
    one_line_error(cli("dedupe", "--run", segmented, "--index", tmp_path / "index"), "notes.txt", "--rebuild")
    assert (tmp_path / "index" / "notes.txt").exists()  # nothing of someone else's is removed
