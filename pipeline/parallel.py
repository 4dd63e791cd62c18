"""Run a function over chunks of items in forked worker processes; give freed memory back.

The task is handed to workers by inheritance through ``fork``, not by pickling, so a task
that holds loaded state (a jieba tokenizer with its dictionaries, an OpenCC converter, an
IDF table) reaches every worker already loaded and is never re-sent per chunk; it may be a
closure or a lambda. Only the chunks and the results travel between processes.

Two entry points over one pool:

* ``imap_chunks(task, chunks)``: ``task(chunk)`` for each ready-made chunk of an iterable,
  yielded in order, at most ``window`` chunks in flight: a stream of a million letters read
  chunk by chunk is never in memory at once.
* ``map_chunks(task, items)``: cuts items (a list or any iterable) into chunks, runs them
  through ``imap_chunks`` and returns the per-item results concatenated in order.

Inside ``with distributed(mapper)`` both run their chunks on ``mapper`` instead (the Spark
engine, ``pipeline.engine``), which pickles the task once and ships it to its workers.
"""
import collections
import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import gc
import itertools
import multiprocessing
import resource

import pyarrow as pa

_task = None
_distributed = None


@contextlib.contextmanager
def distributed(mapper):
    """Run the chunks of ``imap_chunks`` and ``map_chunks`` on ``mapper`` (an object with
    ``imap_chunks(task, chunks)``, e.g. ``engine.SparkMapper``) inside the block; None keeps
    them on this machine."""
    global _distributed
    before, _distributed = _distributed, mapper
    try:
        yield mapper
    finally:
        _distributed = before


def distributed_mapper():
    """The mapper of the enclosing ``distributed`` block (chunk tasks leave this machine), or
    None."""
    return _distributed


def _run(chunk):
    return _task(chunk)


def imap_chunks(task, chunks, processes=1, window=None):
    """Yield ``task(chunk)`` for each chunk of ``chunks``, in order.

    Parameters
    ----------
    task : callable
        Takes one chunk, returns anything picklable.
    chunks : iterable
        Chunks, read only as workers need them.
    processes : int
        Worker processes; 1 runs in this process, and so does a single chunk (forking would
        only copy memory). Ignored inside ``distributed``.
    window : int, optional
        Most chunks submitted and not yet yielded (default: 2 x ``processes``): chunks and
        results held at once, whatever the length of ``chunks``.
    """
    global _task
    if _distributed is not None:
        yield from _distributed.imap_chunks(task, chunks)
        return
    chunks = iter(chunks)
    head = list(itertools.islice(chunks, 2))
    if processes <= 1 or len(head) <= 1:
        yield from map(task, itertools.chain(head, chunks))
        return
    _task = task
    # a process pool from concurrent.futures: multiprocessing.Pool's terminate() can deadlock
    # when a task fails or the caller stops early (CPython issues 73945 and 96995); this
    # pool's shutdown lets the chunks in flight finish and cancels the rest
    executor = concurrent.futures.ProcessPoolExecutor(
        processes, mp_context=multiprocessing.get_context("fork"))
    window = window or 2 * processes
    pending = collections.deque()
    try:
        # the first submission forks every worker; objects the parent already has are left
        # out of the workers' garbage collection, which would otherwise write to (and so
        # copy) every page holding them, dictionaries included
        gc.freeze()
        try:
            pending.append(executor.submit(_run, head[0]))
        finally:
            gc.unfreeze()
        for chunk in itertools.chain(head[1:], chunks):
            if len(pending) >= window:
                yield pending.popleft().result()
            pending.append(executor.submit(_run, chunk))
        while pending:
            yield pending.popleft().result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        _task = None


def map_chunks(task, items, processes=1, chunk_size=2000, progress=None):
    """Return ``task(chunk)`` results for chunks of ``items``, concatenated in order.

    Parameters
    ----------
    task : callable
        Takes a list of items, returns a list of results of the same length.
    items : iterable
        A list, or any iterable (an iterator is read chunk by chunk, at most a few chunks
        ahead of the workers).
    processes : int
        Worker processes; 1 runs in this process.
    chunk_size : int
        Most items per chunk; the chunks of a list are made smaller so every worker gets
        several.
    progress : callable, optional
        Called with the number of items finished after each chunk.
    """
    if hasattr(items, "__len__"):
        chunk_size = min(chunk_size, -(-len(items) // (processes * 8)))
    chunk_size = max(1, chunk_size)
    items = iter(items)
    chunks = iter(lambda: list(itertools.islice(items, chunk_size)), [])
    results = []
    for output in imap_chunks(task, chunks, processes):
        results.extend(output)
        if progress:
            progress(len(output))
    return results


def _malloc_trim():
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_trim = _malloc_trim()


def release_memory():
    """Return memory freed so far to the operating system: Arrow's allocator's, which keeps
    what Parquet and Arrow columns freed for reuse (0.6 GB after a 100,000-letter nightly's
    segment stage), and glibc's (``malloc_trim``; a no-op elsewhere): arrays of a few
    megabytes live in malloc's heap, and once freed they stay resident while later allocations
    pin the heap around them (after a million letters' features are built, about a gigabyte)."""
    pa.default_memory_pool().release_unused()
    if _trim is not None:
        _trim(0)


def allow_open_files():
    """Raise this process's limit of open files to the most the system allows: the dedupe
    index keeps about 20 memory-mapped files open per shard, a shard per night, and the
    usual soft limit of 1,024 is reached after about 50 nights."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):  # a system may refuse; the limit stays
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
