"""Nightly: a whole run, the lock, resuming after a failed stage, the same dump twice."""
import json

import pandas as pd
import pytest

from pipeline import nightly, schema
from pipeline.errors import PetitionError
from tests.conftest import sample_path


@pytest.fixture(scope="module")
def small_dump(tmp_path_factory):
    """The first 400 letters of the bundled sample."""
    path = tmp_path_factory.mktemp("dump") / "letters.csv"
    pd.read_csv(sample_path(), dtype=str, encoding="utf-8-sig", nrows=400).to_csv(
        path, index=False, encoding="utf-8-sig")
    return path


def test_lock_stops_a_second_run(tmp_path, small_dump, config):
    with nightly.home_lock(tmp_path):
        with pytest.raises(PetitionError, match="another nightly run is in progress"):
            nightly.run_nightly([small_dump], tmp_path, config)


def test_failed_stage_resumes_and_same_dump_changes_nothing(tmp_path, small_dump, config, capsys):
    home = tmp_path / "home"
    with pytest.raises(PetitionError, match="stage classify failed: .*no-model"):
        nightly.run_nightly([small_dump], home, config, model=tmp_path / "no-model")
    run = next(home.glob("*-*"))
    assert (run / "segmented.parquet").exists() and not (run / "classified.parquet").exists()
    capsys.readouterr()

    assert nightly.run_nightly([small_dump], home, config, period="quarter") == run
    out = capsys.readouterr().out
    for stage in ("ingest", "normalize", "segment"):
        assert f"{stage} already done" in out
    stages = json.loads((run / "manifest.json").read_text(encoding="utf-8"))[schema.MANIFEST_STAGES]
    assert f"classify: {stages['segment']['rows_out']} rows in" in out
    assert set(stages) == set(nightly.STAGES)
    assert all(stage["rows_in"] >= stage["rows_out"] for stage in stages.values())
    assert "季度" in stages["report"]["notes"]["period"]  # --period reached report
    for name in ("report.html", "report.xlsx", "links.csv", "cases.csv", "deduped.parquet"):
        assert (run / name).exists(), name
    index_files = sorted(p.name for p in (home / "index").rglob("*"))

    assert nightly.run_nightly([small_dump], home, config) == run
    assert "already processed" in capsys.readouterr().out
    assert sorted(p.name for p in (home / "index").rglob("*")) == index_files
