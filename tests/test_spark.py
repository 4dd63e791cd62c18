"""The Spark engine gives the local engine's results: the same links, cases, topics, report and
index on the bundled sample (through the CLI, `petition nightly ... --engine spark`) and, as a second
night against that index, on the real message board (../shared), whose matching then reads the
first night's index shards on the Spark workers."""
import dataclasses
import importlib.util
import pickle

import numpy as np
import pandas as pd
import pytest

from pipeline import nightly, parallel
from pipeline.cli import main
from pipeline.config import PROJECT_ROOT, load_config
from pipeline.dedup.candidates import Pool
from pipeline.dedup.index import DedupeIndex, config_hash
from pipeline.dedup.matcher import Matcher
from pipeline.dedup.scoring import find_links
from tests.conftest import SHARED_BOARD, sample_path

ENGINES = ("local", "spark")


def compare_runs():
    """benchmarks/compare_runs.py, the value-by-value comparison of two nightly runs."""
    spec = importlib.util.spec_from_file_location("compare_runs", PROJECT_ROOT / "benchmarks" / "compare_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def homes(spark, tmp_path_factory):
    """A home per engine: the sample's night through the CLI, then (when ../shared has it) the
    board's night through ``run_nightly``. Returns ({engine: [run directories]}, Spark jobs run
    per engine)."""
    root = tmp_path_factory.mktemp("engines")
    tracker = spark.sparkContext.statusTracker()
    runs, jobs = {}, {}
    for engine in ENGINES:
        before = len(tracker.getJobIdsForGroup())
        home = root / engine
        assert main(["nightly", str(sample_path()), "--home", str(home)]
                    + (["--engine", "spark", "--master", "local[2]"] if engine == "spark" else [])) == 0
        runs[engine] = sorted(home.glob("*/report.xlsx"))
        if (SHARED_BOARD / "messages.xlsx").exists():
            config = load_config()
            config = dataclasses.replace(config, engine=dataclasses.replace(config.engine, name=engine))
            nightly.run_nightly([SHARED_BOARD / "messages.xlsx"], home, config, channel="online",
                                dicts=[SHARED_BOARD / "place_words.txt"], today="2099-01-01")
        runs[engine] = [path.parent for path in sorted(home.glob("*/report.xlsx"))]
        jobs[engine] = len(tracker.getJobIdsForGroup()) - before
    return runs, jobs


def test_the_sample_night_is_the_same_on_spark(homes):
    runs, jobs = homes
    assert jobs["local"] == 0 and jobs["spark"] >= 6  # normalize, segment, classify (2), dedupe (2)
    local, spark = runs["local"][0], runs["spark"][0]
    assert compare_runs().differences(local, spark) == []
    cases = [pd.read_csv(run / "cases.csv", dtype=str, encoding="utf-8-sig") for run in (local, spark)]
    assert len(cases[0]) > 1000
    pd.testing.assert_frame_equal(*cases)


def test_the_board_night_against_the_sample_index_is_the_same_on_spark(homes, board):
    runs, _ = homes
    local, spark = runs["local"][-1], runs["spark"][-1]
    assert local.name.startswith("2099-01-01") and spark.name.startswith("2099-01-01")
    assert compare_runs().differences(local, spark) == []
    links = pd.read_csv(spark / "links.csv", dtype=str, encoding="utf-8-sig")
    assert len(links) > 100


def test_the_index_is_the_same_on_spark(homes):
    runs, _ = homes
    local, spark = (runs[engine][0].parent / "index" for engine in ENGINES)
    files = sorted(path.relative_to(local) for path in local.glob("*/*.*"))
    assert files == sorted(path.relative_to(spark) for path in spark.glob("*/*.*")) and len(files) > 20
    for name in files:
        if name.suffix == ".npy":
            np.testing.assert_array_equal(np.load(local / name), np.load(spark / name))
        else:
            pd.testing.assert_frame_equal(pd.read_parquet(local / name), pd.read_parquet(spark / name))


class RecordingMapper:
    """A distributed mapper that records the tasks it was given and runs them here, pickled and
    unpickled first as Spark ships them."""

    def __init__(self):
        self.tasks = []

    def imap_chunks(self, task, chunks):
        self.tasks.append(task)
        from pyspark import cloudpickle
        return map(pickle.loads(cloudpickle.dumps(task)), chunks)


def test_scoring_goes_to_the_distributed_mapper_and_links_the_same(homes):
    runs, _ = homes
    home = runs["local"][0].parent
    config = load_config()
    with DedupeIndex.open(home / "index", config_hash(config.dedupe)) as index:
        history = index.before(len(index.shards) - 1)  # the last night's letters: new again
        pool = Pool(history, index.shards[-1], config.dedupe.tfidf_features)
        matcher = Matcher.load(config.dedupe.matcher)
        here = find_links(pool, config.dedupe, matcher)
        mapper = RecordingMapper()
        with parallel.distributed(mapper):
            there = find_links(pool, config.dedupe, matcher)
    assert len(mapper.tasks) == 1 and len(here) > 100
    pd.testing.assert_frame_equal(here, there)
