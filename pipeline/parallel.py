"""Run a function over chunks of a list in forked worker processes; give freed memory back.

The task is handed to workers by inheritance through ``fork``, not by pickling, so a task
that holds loaded state (a jieba tokenizer with its dictionaries, an OpenCC converter)
reaches every worker already loaded and is never re-sent per chunk.
"""
import ctypes
import ctypes.util
import gc
import multiprocessing

_task = None


def _run(chunk):
    return _task(chunk)


def map_chunks(task, items, processes=1, chunk_size=2000, progress=None):
    """Return ``task(chunk)`` results for chunks of ``items``, concatenated in order.

    Parameters
    ----------
    task : callable
        Takes a list of items, returns a list of results of the same length.
    items : list
    processes : int
        Worker processes; 1 runs in this process.
    chunk_size : int
        Most items per chunk; chunks are made smaller so every worker gets several.
    progress : callable, optional
        Called with the number of items finished after each chunk.
    """
    global _task
    chunk_size = max(1, min(chunk_size, -(-len(items) // (processes * 8))))
    chunks = [items[i:i + chunk_size] for i in range(0, len(items), chunk_size)]
    results = []
    if processes <= 1 or len(chunks) <= 1:
        outputs = map(task, chunks)
        pool = None
    else:
        _task = task
        # objects the parent already has are left out of the workers' garbage collection, which
        # would otherwise write to (and so copy) every page holding them, dictionaries included
        gc.freeze()
        pool = multiprocessing.get_context("fork").Pool(processes)
        gc.unfreeze()
        outputs = pool.imap(_run, chunks)
    try:
        for output in outputs:
            results.extend(output)
            if progress:
                progress(len(output))
    finally:
        if pool:
            pool.terminate()
            pool.join()
        _task = None
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
    """Return memory freed so far to the operating system (glibc's ``malloc_trim``; a no-op
    elsewhere). Arrays of a few megabytes live in malloc's heap, and once freed they stay
    resident while later allocations pin the heap around them: after a million letters'
    features are built, about a gigabyte."""
    if _trim is not None:
        _trim(0)
