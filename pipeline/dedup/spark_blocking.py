"""Candidate pairs formed and scored in Spark: dedupe's second and third steps on the Spark
engine (``engine.name: spark``), giving exactly the pairs of ``candidates.Candidates``.

* The workers make the blocking entries, (kind, key, letter position, whole day, body), of
  ranges of letters with ``candidates.blocking_keys``, over the key functions of
  ``pipeline.dedup.blocking`` that the local engine's index keeps sorted (an earlier letter's
  only under keys a new letter holds, ``Pool.new_keys``).
* A key is usable when a new letter holds it and it has 2 to its kind's ``max_`` entries
  (``usable_blocks``); its entries are self-joined on (kind, key) under ``Blocks.pairs``'s
  conditions: ``a < b``, ``b`` new, at most the kind's window apart in whole days (a letter
  without a date pairs with its whole block), and, for LSH bands, different texts.
* Same-text pairs (``same_text_pairs``): each new letter and the earliest other letter with
  its text (earliest by ``Pool.rank``).
* The distinct pairs, partitioned by ranges of ``b`` of about ``chunk_pairs`` pairs, are
  scored partition by partition by the scoring function given.

The workers read the letters' features from files, as they read the index's shards: the
night's new ones from the folder they are staged in (``DedupeIndex.staging_folder``), else
saved in a scratch folder inside the index folder for the job. Each
partition's links are written there as a Parquet file, and the driver reads the files: a
million letters' features and links (gigabytes) never pass through the driver's JVM, whose
heap (``engine.driver_memory``) they overflowed.

PySpark is imported only here, when the Spark engine runs.
"""
import contextlib
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.dedup.arrays import holding
from pipeline.dedup.blocking import LSH, kind_rules
from pipeline.dedup.candidates import blocking_keys
from pipeline.dedup.index import SCRATCH_PREFIX
from pipeline.rundir import atomic_path

ENTRIES = "kind int, key long, position long, day long, body long"
LETTERS = "position long, body long, rank long"


def _ranges(frames):
    """The (lo, hi) position ranges of ``frames``' rows."""
    for frame in frames:
        yield from zip(frame["lo"].tolist(), frame["hi"].tolist())


def _entries(work, frames):
    """mapInPandas body: the blocking entries of each range of letters of ``frames``, those
    of earlier letters only under keys a new letter holds (no other key can be usable): a
    night's entries against a million letters are a few million, not fifty."""
    pool = work[0]
    for lo, hi in _ranges(frames):
        for kind, owner, keys in blocking_keys(pool, lo, hi):
            if lo < pool.history:
                kept = holding(keys, pool.new_keys()[kind])
                owner, keys = owner[kept], keys[kept]
            days = pool.days[owner]
            yield pd.DataFrame({"kind": np.full(len(owner), kind, dtype=np.int32), "key": keys, "position": owner,
                                "day": pd.array(np.floor(days), dtype="Int64"),  # NaN (undated): null
                                "body": pool.bodies[owner].astype(np.int64)})


def _letters(work, frames):
    """mapInPandas body: each letter's position, text (body number) and rank (earliest first)."""
    pool = work[0]
    for lo, hi in _ranges(frames):
        yield pd.DataFrame({"position": np.arange(lo, hi), "body": pool.bodies[lo:hi].astype(np.int64),
                            "rank": pool.rank[lo:hi]})


def _scored(work, frames):
    """mapInPandas body: the scoring function over the pairs of one partition (one range of
    ``b``, sorted by b then a), its links written to the scratch folder; yields (its first b,
    the file)."""
    pool, score, scratch = work
    pairs = pd.concat([frame for frame in frames if len(frame)] or [pd.DataFrame({"a": [], "b": []})])
    if len(pairs):
        first = int(pairs["b"].iloc[0])
        path = Path(scratch) / f"links-{first:012d}.parquet"
        # a task run again (a lost executor) writes the same file whole
        links = score(pool, pairs["a"].to_numpy(dtype=np.int64), pairs["b"].to_numpy(dtype=np.int64))
        with atomic_path(path) as tmp:
            links.to_parquet(tmp, index=False)
        yield pd.DataFrame({"first": [first], "file": [str(path)]})


def letter_frames(session, shipment, total, step):
    """The blocking entries and the letters of the shipped pool (``total`` letters, ``step``
    per Spark task) as two Spark DataFrames, made on the workers."""
    ranges = [(lo, min(lo + step, total)) for lo in range(0, total, step)]
    frame = session.sparkContext.parallelize(ranges, len(ranges)).toDF("lo long, hi long")
    return frame.mapInPandas(shipment(_entries), ENTRIES), frame.mapInPandas(shipment(_letters), LETTERS)


def block_pairs(session, entries, history, settings):
    """Pairs (a, b) of entries sharing a usable blocking key, under ``Blocks.pairs``'s
    conditions (see the module docstring)."""
    from pyspark.sql import functions as F
    rules = session.createDataFrame([(kind, most, window, kind == LSH) for kind, (most, window)
                                     in kind_rules(settings).items()], "kind int, most long, window long, lsh boolean")
    usable = (entries.groupBy("kind", "key").agg(F.count("*").alias("held"), F.max("position").alias("last"))
              .join(F.broadcast(rules), "kind")
              .where((F.col("held") >= 2) & (F.col("held") <= F.col("most")) & (F.col("last") >= history))
              .select("kind", "key", "window", "lsh"))
    blocked = entries.join(usable, ["kind", "key"])
    first = blocked.select("kind", "key", *(F.col(name).alias(f"{name}_a") for name in ("position", "day", "body")))
    second = blocked.where(F.col("position") >= history).select(
        "kind", "key", "window", "lsh", *(F.col(name).alias(f"{name}_b") for name in ("position", "day", "body")))
    within = (F.col("window").isNull() | F.col("day_a").isNull() | F.col("day_b").isNull()
              | (F.abs(F.col("day_a") - F.col("day_b")) <= F.col("window")))
    return (first.join(second, ["kind", "key"])
            .where((F.col("position_a") < F.col("position_b")) & within
                   & (~F.col("lsh") | (F.col("body_a") != F.col("body_b"))))
            .select(F.col("position_a").alias("a"), F.col("position_b").alias("b")))


def same_text_pairs(letters, history):
    """Each new letter and the earliest other letter with its text, as pairs (a, b), a < b."""
    from pyspark.sql import Window, functions as F
    held = letters.groupBy("body").agg(F.max("position").alias("last")).where(F.col("last") >= history)
    texts = letters.join(held.select("body"), "body").withColumn(
        "nth", F.row_number().over(Window.partitionBy("body").orderBy("rank")))
    earliest = texts.where(F.col("nth") == 1).select("body", F.col("position").alias("earliest"))
    second = texts.where(F.col("nth") == 2).select("body", F.col("position").alias("second"))
    partner = F.when(F.col("position") == F.col("earliest"), F.col("second")).otherwise(F.col("earliest"))
    return (texts.where(F.col("position") >= history).join(earliest, "body").join(second, "body", "left")
            .withColumn("partner", partner).where(F.col("partner").isNotNull())
            .select(F.least("position", "partner").alias("a"), F.greatest("position", "partner").alias("b")))


@contextlib.contextmanager
def candidate_pairs(session, shipment, pool, settings):
    """The candidate pairs (a, b) of the pool, each once, as a Spark DataFrame: the pairs
    ``Candidates(pool, settings)`` lists over all its chunks. ``shipment`` holds the pool
    on the workers (a ``Shipment`` of ``(pool, ...)``). A context manager: the entries and
    letters the pairs are joined from are cached inside the block (made once, read by
    several joins)."""
    entries, letters = (frame.persist() for frame in
                        letter_frames(session, shipment, len(pool.letters), settings.chunk_size))
    try:
        yield (block_pairs(session, entries, pool.history, settings)
               .unionByName(same_text_pairs(letters, pool.history)).distinct())
    finally:
        entries.unpersist()
        letters.unpersist()


def spark_links(mapper, pool, settings, score):
    """Links of the pool's new letters on the Spark engine: ``score(pool, a, b)`` (scoring's
    ``score_pairs`` of the pairs) over ranges of ``b`` of the candidate pairs, formed in Spark;
    the links frames concatenated in order of ``b``, as the local engine's chunks are. The
    scratch folder (see the module docstring) is removed after."""
    session = mapper.session()
    # absolute: executors elsewhere run in folders of their own; a folder a lingering worker
    # still maps (NFS) or writes to is left for the index's next opening to remove
    with (tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX, dir=Path(pool.index.directory).resolve(),
                                      ignore_cleanup_errors=True) as scratch,
          pool.batch.saved_for_workers(Path(scratch) / "batch"),
          mapper.shipped((pool, score, scratch)) as shipment,
          candidate_pairs(session, shipment, pool, settings) as pairs):
        pairs = pairs.persist()  # counted, sampled for the ranges, then scored
        try:
            partitions = max(1, -(-pairs.count() // settings.chunk_pairs))
            files = (pairs.repartitionByRange(partitions, "b").sortWithinPartitions("b", "a")
                     .mapInPandas(shipment(_scored), "first long, file string").toPandas().sort_values("first"))
        finally:
            pairs.unpersist()
        frames = [pd.read_parquet(file) for file in files["file"]]
    empty = np.zeros(0, dtype=np.int64)
    return pd.concat(frames, ignore_index=True) if frames else score(pool, empty, empty)
