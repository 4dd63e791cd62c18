"""The Spark engine gives the local engine's results: the same links, cases, topics, report and
index on the bundled sample (through the CLI, `petition nightly ... --engine spark`) and, as a second
night against that index, on the real message board (../shared), whose matching then reads the
first night's index shards on the Spark workers; and night by night, the candidate pairs Spark
joins on the blocking keys are the local engine's."""
import dataclasses
import importlib.util

import numpy as np
import pandas as pd
import pytest

from pipeline import nightly, parallel
from pipeline.cli import main
from pipeline.config import PROJECT_ROOT, load_config
from pipeline.dedup.candidates import Candidates, Pool
from pipeline.dedup.index import DedupeIndex, config_hash
from pipeline.dedup.matcher import Matcher
from pipeline.dedup.scoring import find_links
from pipeline.dedup.spark_blocking import candidate_pairs
from pipeline.engine import SparkMapper
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
    # nothing left beside the shards (Spark's scratch folder of features and links is removed)
    assert sorted(path.name for path in spark.iterdir()) == sorted(path.name for path in local.iterdir())
    files = sorted(path.relative_to(local) for path in local.glob("*/*.*"))
    assert files == sorted(path.relative_to(spark) for path in spark.glob("*/*.*")) and len(files) > 20
    for name in files:
        if name.suffix == ".npy":
            np.testing.assert_array_equal(np.load(local / name), np.load(spark / name))
        else:
            pd.testing.assert_frame_equal(pd.read_parquet(local / name), pd.read_parquet(spark / name))


def test_candidate_pairs_are_joined_in_spark_as_the_local_engine_lists_them(homes, spark):
    """Each night of the local home's index (the sample's, then the board's against it): the
    pairs Spark joins on the blocking keys are the pairs ``Candidates`` lists over its chunks,
    and the last night's links scored over several ranges of pairs in Spark are the local ones."""
    runs, _ = homes
    home = runs["local"][0].parent
    settings = dataclasses.replace(load_config().dedupe, chunk_pairs=10_000)  # several chunks
    mapper, matcher = SparkMapper("local[2]"), Matcher.load(settings.matcher)
    with DedupeIndex.open(home / "index", config_hash(load_config().dedupe)) as index:
        assert len(index.shards) == len(runs["local"])
        for position, shard in enumerate(index.shards):
            pool = Pool(index.before(position), shard, settings.tfidf_features)
            candidates = Candidates(pool, settings)
            listed = [candidates.pairs(*bounds) for bounds in candidates.chunks(settings.chunk_pairs)]
            here = np.sort(np.concatenate([b * len(pool.letters) + a for a, b in listed]))
            with mapper.shipped((pool,)) as shipment, candidate_pairs(spark, shipment, pool, settings) as pairs:
                there = pairs.toPandas()
            assert len(listed) > 1 and len(here) > 10_000
            np.testing.assert_array_equal(here, np.sort(there["b"].to_numpy() * len(pool.letters) + there["a"]))
        with parallel.distributed(mapper):
            joined = find_links(pool, settings, matcher)
    local = find_links(pool, settings, matcher)
    assert len(local) > 100
    pd.testing.assert_frame_equal(local, joined)
