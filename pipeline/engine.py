"""Where the letter-wise work runs: on this machine (``local``) or on a Spark cluster (``spark``).

The stages hand every piece of letter-wise work to ``pipeline.parallel`` as a task over
chunks (normalize's cleaning, segment's cutting, classify's prediction and attributes,
dedupe's features). The local engine runs those tasks in forked worker processes; the Spark
engine runs the very same tasks as ``mapInPandas`` jobs, one Spark task per chunk, so both
engines call the same functions and write the same run directory, index and archive.
Dedupe's candidate pairs are joined and scored in Spark (``pipeline.dedup.spark_blocking``,
through ``SparkMapper.shipped``). What is not letter-wise (reading and writing the run
directory, cases) stays on the driver, as in the local engine.

* ``on_configured_engine`` wraps a stage's ``run_stage``: under ``engine.name: spark`` its
  chunk tasks go to Spark (``parallel.distributed``).
* ``spark_session(master, driver_memory=...)``: the one SparkSession of the process (Arrow on,
  WARN logs, the workers running this Python), made on first use; a later stage of the same
  command reuses it.
* ``SparkMapper``: ``imap_chunks(task, chunks)`` on Spark. The task (a closure with its
  loaded models and settings) is pickled once (a ``Shipment``); each executor's Python worker
  unpickles it once and keeps it while the same task comes again, so state a task loads on
  first use (a segmenter's dictionaries) is loaded once per worker, not per chunk.
  ``shipped(value)`` does the same for any value read by ``mapInPandas`` functions of one's own.
"""
import contextlib
import functools
import hashlib
import importlib.util
import itertools
import os
import pickle
import shutil
import sys
import time
import warnings

from pipeline import parallel
from pipeline.errors import PetitionError

# the last task a Spark Python worker unpickled, by key: a stage's batches send the same one again
_kept = (None, None)


def spark_session(master="local[*]", app_name="petition", driver_memory=""):
    """The process's SparkSession (made on first call, reused after; ``master`` and
    ``driver_memory``, the driver JVM's heap or "" for Spark's own setting, count only then):
    Arrow transfers on, Spark's log at WARN, workers running ``sys.executable``."""
    if importlib.util.find_spec("pyspark") is None:
        raise PetitionError("the Spark engine needs PySpark: pip install -e '.[spark]' (or use --engine local)")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise PetitionError("the Spark engine needs Java 17: make java, or install openjdk-17-jre-headless "
                            "(or use --engine local)")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if master.startswith("local"):  # one machine: Spark listens on the loopback only
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # PySpark 4.3 and pandas 3 warn about each other; the results are checked equal (tests/test_spark.py)
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    warnings.filterwarnings("ignore", message="The copy keyword is deprecated", module=r"pyspark\.")
    from pyspark.sql import SparkSession  # the JVM's library: loaded only for the Spark engine
    builder = (SparkSession.builder.master(master).appName(app_name)
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.python.worker.reuse", "true")
               .config("spark.ui.showConsoleProgress", "false"))
    if driver_memory:  # given here, it overrides spark-defaults.conf and SPARK_DRIVER_MEMORY
        builder = builder.config("spark.driver.memory", driver_memory)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def _worker_task(key, payload):
    """The task of ``payload`` (pickled, named by ``key``), unpickled once per Python worker
    while the same task comes; the one before is let go first (a model, a pool of letters)."""
    global _kept
    if _kept[0] != key:
        _kept = (None, None)
        _kept = (key, pickle.loads(payload))
    return _kept[1]


def _on_worker(key, shipped, function, frames):
    """mapInPandas body: ``function(value, frames)``, ``value`` the shipped one (``Shipment``)."""
    yield from function(_worker_task(key, shipped.value), frames)


def _timed(task, chunk):
    """(``task(chunk)``, the seconds it took), pickled."""
    start = time.perf_counter()
    result = task(pickle.loads(chunk))
    return pickle.dumps((result, time.perf_counter() - start), protocol=5)


def _run_chunks(task, frames):
    """``task(chunk)`` and its seconds for each (position, pickled chunk) row of ``frames``."""
    import pandas as pd
    for frame in frames:
        results = [_timed(task, chunk) for chunk in frame["chunk"]]
        yield pd.DataFrame({"position": frame["position"].to_numpy(), "result": results})


class Shipment:
    """A value pickled once (PySpark's cloudpickle: closures travel by value) and broadcast to
    the workers; ``shipment(function)`` is a ``mapInPandas`` function calling
    ``function(value, frames)`` on a worker, whose Python unpickles ``value`` once while the
    same value comes. ``close`` lets the broadcast go."""

    def __init__(self, session, value):
        from pyspark import cloudpickle
        payload = cloudpickle.dumps(value)
        self.bytes, self.key = len(payload), hashlib.blake2b(payload, digest_size=16).hexdigest()
        self._broadcast = session.sparkContext.broadcast(payload)

    def __call__(self, function):
        return functools.partial(_on_worker, self.key, self._broadcast, function)

    def close(self):
        self._broadcast.destroy()


class SparkMapper:
    """``imap_chunks`` on Spark: each chunk is one Spark task, run by ``mapInPandas``.

    Parameters
    ----------
    master : str
        Spark master URL: ``local[*]``, ``local[2]``, ``spark://host:7077``, ``yarn``.
    driver_memory : str
        The driver JVM's heap (``spark.driver.memory``), e.g. ``4g``, or "" (the default) for
        Spark's own setting; under ``local[N]`` the executors run in it too. The stages pass
        ``engine.driver_memory``.
    chunks_per_job : int, optional
        Chunks sent per Spark job (default: 4 per core of the cluster): the driver holds
        that many chunks and their results at once, whatever the length of the stream.
    """

    def __init__(self, master="local[*]", *, driver_memory="", chunks_per_job=None):
        self.master, self.driver_memory, self.chunks_per_job = master, driver_memory, chunks_per_job

    costs_ = None  # per task name: its pickled size and each chunk's seconds on its worker (bench_spark.py)

    def session(self):
        """The SparkSession on ``master``."""
        return spark_session(self.master, driver_memory=self.driver_memory)

    @contextlib.contextmanager
    def shipped(self, value):
        """``value`` on the workers inside the block: yields its ``Shipment``."""
        shipment = Shipment(self.session(), value)
        try:
            yield shipment
        finally:
            shipment.close()

    def imap_chunks(self, task, chunks):
        """Yield ``task(chunk)`` for each chunk of ``chunks``, in order."""
        session = self.session()
        per_job = self.chunks_per_job or 4 * session.sparkContext.defaultParallelism
        name = getattr(task, "__qualname__", type(task).__qualname__)
        costs = self.costs_.setdefault(name, {"seconds": []}) if self.costs_ is not None else {"seconds": []}
        chunks = iter(chunks)
        with self.shipped(task) as shipment:
            costs["payload_bytes"] = shipment.bytes
            while job := list(itertools.islice(chunks, per_job)):
                results = self._job(session, shipment(_run_chunks), job)
                costs["seconds"].extend(cost for _, cost in results)
                yield from (result for result, _ in results)

    @staticmethod
    def _job(session, run, chunks):
        """[(result, seconds)] of one Spark job over ``chunks`` (``run``: the shipped task's
        ``mapInPandas`` function), in order."""
        rows = [(position, pickle.dumps(chunk, protocol=5)) for position, chunk in enumerate(chunks)]
        frame = session.sparkContext.parallelize(rows, len(rows)).toDF("position long, chunk binary")
        results = frame.mapInPandas(run, "position long, result binary").toPandas().sort_values("position")
        return [pickle.loads(result) for result in results["result"]]

    def record_costs(self):
        """From now on keep, per task name, the bytes of the pickled task and each chunk's seconds
        in ``costs_``; returns self."""
        self.costs_ = {}
        return self


@functools.cache
def spark_mapper(master, driver_memory):
    """The process's ``SparkMapper`` for ``master`` (its ``costs_`` gathered across stages)."""
    return SparkMapper(master, driver_memory=driver_memory)


def mapper_for(settings):
    """The distributed mapper of the ``engine`` settings (``config.engine``), or None for
    the local engine."""
    return spark_mapper(settings.master, settings.driver_memory) if settings.name == "spark" else None


def on_configured_engine(run_stage):
    """Decorate a stage's ``run_stage(run, config, ...)``: its chunk tasks run on the engine
    of ``config.engine`` (``parallel.distributed``)."""
    @functools.wraps(run_stage)
    def on_engine(run, config, **options):
        mapper = mapper_for(config.engine)
        if mapper is not None:  # started (or refused) before the stage begins
            mapper.session()
        with parallel.distributed(mapper):
            return run_stage(run, config, **options)
    return on_engine
