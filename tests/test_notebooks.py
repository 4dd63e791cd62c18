"""Notebooks: each .py/.ipynb pair is in sync, and each runs top to bottom on a run built
here, showing no raw petitioner identifier."""
import os
import re

import pandas as pd
import pytest

from pipeline import schema
from pipeline.config import PROJECT_ROOT
from report_fixtures import pipeline_run, raw_identifiers, synthetic_letters, write_run

jupytext = pytest.importorskip("jupytext", reason="notebook tools are in the [dev] extras: pip install -e '.[dev]'")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = PROJECT_ROOT / "notebooks"
NAMES = ("topic_trends", "case_explorer", "classifier_review")


@pytest.fixture(scope="module")
def notebook_run(tmp_path_factory):
    """The session's pipeline run (real stages when they exist), its letters and true labels."""
    run, letters, labels, _ = pipeline_run(tmp_path_factory)
    return run, letters, labels


def outputs_text(notebook):
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            for kind, value in output.get("data", {}).items():
                if kind.startswith("text/"):
                    parts.append(value if isinstance(value, str) else "".join(value))
    return "\n".join(parts)


def execute(name, out, env):
    """Run notebooks/<name>.py as `python -m pipeline.explore` does; return the executed notebook."""
    from pipeline.explore import run_notebook
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update({k: str(v) for k, v in env.items()})
    try:
        run_notebook(NOTEBOOKS / f"{name}.py", out, timeout=300)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return jupytext.read(out)


@pytest.mark.parametrize("name", NAMES)
def test_pair_is_in_sync(name):
    script, paired = jupytext.read(NOTEBOOKS / f"{name}.py"), jupytext.read(NOTEBOOKS / f"{name}.ipynb")
    assert [(c.cell_type, c.source) for c in script.cells] == [(c.cell_type, c.source) for c in paired.cells], \
        f"run `jupytext --sync notebooks/{name}.py`"
    assert all(not c.get("outputs") for c in paired.cells), "commit notebooks without outputs"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name, notebook_run, tmp_path):
    run, letters, labels = notebook_run
    corrections = tmp_path / "corrections.csv"
    # the default model is sure of almost every generated letter: review the least sure ones
    notebook = execute(name, run / f"{name}.ipynb", {"PETITION_RUN": run, "PETITION_LABELS": labels,
                                                     "PETITION_CORRECTIONS": corrections,
                                                     "PETITION_REVIEW_BELOW": "0.9999"})
    text = outputs_text(notebook)
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    leaks = {v for v in raw_identifiers(letters) if v in text}
    assert leaks == set(), f"raw identifiers shown: {sorted(leaks)[:5]}"
    images = sum("image/png" in o.get("data", {}) for c in notebook.cells for o in c.get("outputs", []))

    if name == "topic_trends":
        assert images >= 1 and "件次（分母）" in text
    elif name == "case_explorer":
        assert "<mark>" in text, "shared names not marked"
        # people by pseudonym only: clean text already holds the petitioners' names masked (张某)
        assert re.search(r"\b[0-9a-f]{16}\b", text), "no petitioner pseudonym shown"
        assert re.search(r"Case `[^`]+`: \d+ letters", text)
        if (run / "links.csv").exists():       # the links inside the case, with their shared names
            assert schema.SHARED_NAMES in text and schema.RELATION in text
    elif name == "classifier_review":
        assert "accuracy" in text and images >= 2
        saved = pd.read_csv(corrections, encoding="utf-8-sig", dtype=str)
        assert list(saved.columns) == ["text", "label"] and len(saved) > 0
        shown = {v for v in raw_identifiers(letters) if saved["text"].str.contains(v, regex=False).any()}
        assert not shown, saved["text"][saved["text"].str.contains(sorted(shown)[0], regex=False)].iloc[0]
        from pipeline.letters import topic_names
        assert set(saved["label"]) <= set(topic_names(PROJECT_ROOT / "corpora" / "taxonomy.yaml"))


# --- The notebooks' helpers ------------------------------------------------------------------

def test_redact_removes_identifiers_and_keeps_masked_names():
    from pipeline.explore import redact
    text = ("我是柳溪镇白石村3组村民张建国，住江北市青山县柳溪镇白石村3组，身份证339021195001222518，"
            "电话13912345678。联名人：李秀英、王志强、赵海波。村干部郭某侵占补偿款。")
    out = redact(text, [("张建国", "〔信访人ab12〕"), "李秀英"], ["江北市青山县柳溪镇白石村3组"])
    for raw in ("张建国", "李秀英", "王志强", "339021195001222518", "13912345678", "白石村3组"):
        assert raw not in out
    assert "〔信访人ab12〕" in out and "郭某" in out and "〔联名人名单已隐去〕" in out


def test_redact_masks_every_identifier_form_and_names_after_cues():
    from pipeline.explore import redact
    text = ("我叫邹国强，身份证430103850612001，卡号6222 0212 3456 7890 123，电话(0731)84567890、"
            "0731 84567890、+86 137 1234 5678，邮箱zgq@163.com。本人认为本人向法院反映过。")
    out = redact(text)
    for raw in ("邹国强", "430103850612001", "6222", "84567890", "137", "zgq@163.com"):
        assert raw not in out
    assert out.startswith("我叫〔信访人〕") and "本人认为本人向法院反映过" in out


def test_case_links_shows_shared_names_redacted():
    from pipeline.explore import case_links
    case = pd.DataFrame({schema.LETTER_ID: ["L1", "L2"], schema.PETITIONER_NAME: ["张建国", "郭某"],
                         schema.ADDRESS: ["江北市青山县柳溪镇白石村3组", None]})
    links = pd.DataFrame({schema.LETTER_A: ["L1", "L7"], schema.LETTER_B: ["L2", "L8"],
                          schema.RELATION: [schema.REPEAT_PETITION, schema.SAME_MATTER], schema.LINK_SCORE: ["0.9", "0.8"],
                          schema.SHARED_NAMES: ["白石村、张建国、郭某、青山县柳溪镇白石村3组", "阳高路"],
                          schema.CHAR_SIMILARITY: ["0.5", "0.4"]})
    shown = case_links(links, case)
    assert list(shown.columns) == [schema.LETTER_A, schema.LETTER_B, schema.RELATION, schema.LINK_SCORE,
                                   schema.SHARED_NAMES]
    assert shown[schema.SHARED_NAMES].tolist() == ["白石村、〔信访人〕、郭某、〔住址〕"]


def test_shared_names_and_highlight():
    from pipeline.explore import highlight, shared_names
    texts = ["小塘路以东、阳高路以南的空地被居民改成菜地，城管局和街道不管。",
             "阳高路南侧小塘路东边空地成了菜园子，街道不作为。", "与此无关的一封信。"]
    shared = shared_names(texts)
    assert "小塘路" in shared and "阳高路" in shared
    marked = highlight(texts[1], shared)
    assert marked.count("<mark>") >= 2 and "<script" not in highlight("<script>", [])


def test_find_run(tmp_path, monkeypatch):
    from pipeline.errors import PetitionError
    from pipeline.explore import find_run
    monkeypatch.delenv("PETITION_RUN", raising=False)
    with pytest.raises(PetitionError, match="no run found"):
        find_run(tmp_path)
    write_run(tmp_path / "2024-01-01-a", synthetic_letters(n=20))
    assert find_run(tmp_path) == tmp_path / "2024-01-01-a"
    monkeypatch.setenv("PETITION_RUN", str(tmp_path / "missing"))
    with pytest.raises(PetitionError, match="no deduped.parquet"):
        find_run(tmp_path)


def test_redact_frame_hides_each_letters_own_petitioner(notebook_run):
    from pipeline import explore
    _, letters, _ = notebook_run
    texts = explore.redact_frame(letters)
    anonymous = explore._anonymous_names()
    named = [explore._raw_name(n, anonymous) for n in letters[schema.PETITIONER_NAME]]
    assert sum(named) > 100
    leaks = [n for n, ok, t in zip(letters[schema.PETITIONER_NAME], named, texts) if ok and n in t]
    assert leaks == []
