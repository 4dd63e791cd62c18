"""The process-pool helper: results in order, from lists and from streams read a few chunks
ahead of the workers, the task inherited by fork (a closure, never pickled)."""
import itertools
import subprocess
import sys
import textwrap

import pytest

from pipeline.parallel import imap_chunks, map_chunks


@pytest.mark.parametrize("processes", [1, 3])
def test_map_chunks_keeps_order_for_lists_and_iterators(processes):
    offset = 1000  # a closure: workers inherit it by fork, it is never pickled

    def task(chunk):
        return [item + offset for item in chunk]
    expected = [item + offset for item in range(5000)]
    done = []
    assert map_chunks(task, list(range(5000)), processes, chunk_size=300, progress=done.append) == expected
    assert sum(done) == 5000 and len(done) > 1
    assert map_chunks(task, iter(range(5000)), processes, chunk_size=300) == expected
    assert map_chunks(task, [], processes) == []


def test_a_stream_is_read_a_few_chunks_ahead_only():
    pulled = []

    def stream():
        for number in itertools.count():
            pulled.append(number)
            yield [number]
    results = imap_chunks(len, stream(), processes=2, window=3)
    for _ in range(5):
        assert next(results) == 1
    results.close()
    assert len(pulled) <= 5 + 3  # yielded + in flight


def test_worker_errors_reach_the_caller():
    def task(chunk):
        raise ValueError(f"bad chunk {chunk}")
    with pytest.raises(ValueError, match="bad chunk"):
        list(imap_chunks(task, [[1], [2], [3]], processes=2))


def test_failing_tasks_and_callers_stopping_early_never_hang_the_pool():
    # multiprocessing.Pool's terminate() deadlocked about once in a hundred of these stops
    # (CPython issue 96995) and hung a CI run: run hundreds in a child that must finish
    script = textwrap.dedent("""
        from pipeline.parallel import imap_chunks

        def fail(chunk):
            raise ValueError(chunk)
        for _ in range(400):
            try:
                list(imap_chunks(fail, [[1], [2], [3]], processes=2))
            except ValueError:
                pass
            results = imap_chunks(len, iter(lambda: [0], None), processes=2, window=3)
            next(results)
            results.close()
        """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
