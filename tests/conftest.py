"""Shared fixtures: configuration, the real message-board corpus, CLI runner."""
import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from pipeline.config import PROJECT_ROOT, load_config

SHARED_BOARD = PROJECT_ROOT.parent / "shared" / "corpora" / "messageboard"
SAMPLE_DUMP = PROJECT_ROOT / "corpora" / "sample" / "letters.csv"


@pytest.fixture(scope="session", autouse=True)
def isolated_environment(tmp_path_factory):
    """Keep caches and the pseudonymisation key out of the user's home during tests."""
    data_dir = tmp_path_factory.mktemp("data")
    saved = {k: os.environ.get(k) for k in ("PETITION_DATA_DIR", "PETITION_KEY")}
    os.environ["PETITION_DATA_DIR"] = str(data_dir)
    os.environ["PETITION_KEY"] = "test-key-not-secret"
    yield data_dir
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def config(isolated_environment):
    return load_config()


@pytest.fixture(scope="session")
def board():
    """The real message-board corpus in ../shared (skipped when the folder is absent)."""
    if not SHARED_BOARD.is_dir():
        pytest.skip(f"real message-board corpus not found at {SHARED_BOARD}")
    return SHARED_BOARD


@pytest.fixture(scope="session")
def spark(isolated_environment):
    """One local[2] SparkSession for the test run (the Spark engine's stages reuse it); skipped
    without Java or PySpark (`make test` installs both)."""
    if shutil.which("java") is None:
        pytest.skip("java not found: the Spark engine needs it (make java installs openjdk-17-jre-headless)")
    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("pyspark not installed (pip install -e '.[dev]')")
    from pipeline.engine import spark_session
    session = spark_session("local[2]")
    yield session
    session.stop()


@pytest.fixture
def cli(capsys):
    """Run ``petition ARGS...``; returns (exit code, stdout, stderr)."""
    from pipeline.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def sample_path():
    if not SAMPLE_DUMP.exists():
        pytest.skip("bundled sample not generated yet")
    return SAMPLE_DUMP


@pytest.fixture(scope="session")
def board_run(board, tmp_path_factory, isolated_environment):
    """messages.xlsx taken through ingest, normalize and segment once for the session."""
    from pipeline.cli import main
    run = tmp_path_factory.mktemp("board_run")
    for argv in (["ingest", board / "messages.xlsx", "--run", run, "--channel", "online"],
                 ["normalize", "--run", run],
                 ["segment", "--run", run, "--dict", board / "place_words.txt"]):
        assert main([str(a) for a in argv]) == 0
    return Path(run)
