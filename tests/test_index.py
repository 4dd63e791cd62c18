"""The dedupe index under concurrency and crashes: one dedupe at a time on an index (a second
waits for the lock), and a dedupe stopped dead at any point (as by a power cut or kill -9: no
cleanup runs) resumes to the outputs an uninterrupted run gives."""
import json
import os
import select
import shutil
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from pipeline import schema
from pipeline.config import PROJECT_ROOT
from pipeline.dedup.index import DedupeIndex
from pipeline.errors import PetitionError
from tests.test_dedupe import LETTERS, _hash, write_dump

CRASH = 17  # exit status of a process stopped by a patch below
OUTPUTS = ("links.csv", "cases.csv", "summary.json")
# Python run before `petition dedupe` in a new process, each ending it at one point
CRASH_POINTS = {
    # half of the first shard's files written into its temporary folder
    "saving the shard": """
        import numpy
        import pipeline.dedup.index as index
        saved, real_save = [], numpy.save
        def save(*args, **kwargs):
            saved.append(args[0])
            if len(saved) == 5:
                os._exit(CRASH)
            real_save(*args, **kwargs)
        index.np.save = save""",
    # the shard renamed into place, the manifest not yet written
    "before the manifest": """
        import pipeline.dedup.index as index
        index.write_json = lambda *args, **kwargs: os._exit(CRASH)""",
    # the manifest committed, no output of the stage written
    "after the manifest": """
        import pipeline.dedupe as dedupe
        dedupe.write_deduped = lambda *args, **kwargs: os._exit(CRASH)""",
    # every output written, the stage not recorded in the run's manifest
    "before the stage is recorded": """
        import pipeline.rundir as rundir
        rundir.RunDir.record = lambda *args, **kwargs: os._exit(CRASH)""",
}
SLOW = """
    import time
    import pipeline.dedupe as dedupe
    real_find_links = dedupe.find_links
    def find_links(*args, **kwargs):  # widen the window between reading the index and adding to it
        time.sleep(2)
        return real_find_links(*args, **kwargs)
    dedupe.find_links = find_links"""


def dedupe_process(run, index, patch=""):
    """Start `petition dedupe --run RUN --index INDEX` in a new process, after ``patch``."""
    code = "\n".join(["import os, sys", f"CRASH = {CRASH}", textwrap.dedent(patch),
                      "from pipeline.cli import main",
                      f"sys.exit(main(['dedupe', '--run', {str(run)!r}, '--index', {str(index)!r}]))"])
    return subprocess.Popen([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def printed_line(process, text, timeout=300):
    """The first line of ``process``'s output holding ``text``, read as it comes; '' when the
    output ends or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([process.stdout], [], [], 1)[0]:
            line = process.stdout.readline()
            if not line or text in line:
                return line
    return ""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs through segment (A: L1-L5, B: L6-L9; B's letters link to A's) and the outputs
    of deduping A then B into a fresh index without interruption."""
    from pipeline.cli import main
    base = tmp_path_factory.mktemp("index_runs")
    for name, rows in (("A", LETTERS[:5]), ("B", LETTERS[5:])):
        dump = write_dump(base / f"{name}.csv", rows)
        for argv in (["ingest", dump, "--run", base / name], ["normalize", "--run", base / name],
                     ["segment", "--run", base / name]):
            assert main([str(a) for a in argv]) == 0
        shutil.copytree(base / name, base / f"reference{name}")
    for name in ("A", "B"):
        assert main(["dedupe", "--run", str(base / f"reference{name}"), "--index", str(base / "reference_index")]) == 0
    return base


def fresh(runs, tmp_path, *names):
    """Copies of the segmented runs ``names`` under ``tmp_path``."""
    for name in names:
        shutil.copytree(runs / name, tmp_path / name)
    return [tmp_path / name for name in names]


def assert_same_outputs(run, reference):
    for name in OUTPUTS:
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    assert pd.read_parquet(run / "deduped.parquet").equals(pd.read_parquet(reference / "deduped.parquet"))
    assert "dedupe" in json.loads((run / "manifest.json").read_text(encoding="utf-8"))[schema.MANIFEST_STAGES]


def index_letters(directory):
    with DedupeIndex.open(directory, _hash()) as index:
        return index.letters[schema.LETTER_ID].tolist()


# --- one dedupe at a time --------------------------------------------------------------------------

def test_concurrent_dedupes_keep_every_letter(runs, tmp_path):
    run_a, run_b = fresh(runs, tmp_path, "A", "B")
    index = tmp_path / "index"
    processes = [dedupe_process(run, index, SLOW) for run in (run_a, run_b)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in processes]
    for code, out, err in results:
        assert code == 0 and "Traceback" not in err, err
    assert any("waiting for the index" in out for _, out, _ in results)  # the second waited
    assert sorted(index_letters(index)) == sorted(row[0] for row in LETTERS)


def test_busy_index_waits_then_fails_in_one_line(tmp_path):
    with DedupeIndex.open(tmp_path / "index", _hash()):
        start = time.monotonic()
        with pytest.raises(PetitionError) as caught:
            DedupeIndex.open(tmp_path / "index", _hash(), wait=1)
        assert time.monotonic() - start >= 1
        message = str(caught.value)
        assert "in use by another dedupe" in message and f"pid {os.getpid()}" in message
        assert "index_lock_wait" in message and "\n" not in message
    DedupeIndex.open(tmp_path / "index", _hash(), wait=0).close()  # free again once released


def test_a_waiting_dedupe_goes_on_when_the_index_is_free(runs, tmp_path):
    (run_a,) = fresh(runs, tmp_path, "A")
    holder = DedupeIndex.open(tmp_path / "index", _hash())
    process = dedupe_process(run_a, tmp_path / "index")
    told = printed_line(process, "waiting for the index")  # however long a busy machine takes to start it
    assert process.poll() is None  # still waiting
    holder.close()
    code, _, err = process.wait(timeout=120), *process.communicate()
    assert code == 0 and told, err
    assert sorted(index_letters(tmp_path / "index")) == sorted(row[0] for row in LETTERS[:5])


# --- crash windows -----------------------------------------------------------------------------------

@pytest.mark.parametrize("point, second", [(point, False) for point in CRASH_POINTS] + [
    ("before the manifest", True), ("after the manifest", True)])
def test_a_dedupe_stopped_dead_resumes_to_the_same_outputs(cli, runs, tmp_path, point, second):
    run_a, run_b = fresh(runs, tmp_path, "A", "B")
    index = tmp_path / "index"
    if second:
        assert cli("dedupe", "--run", run_a, "--index", index)[0] == 0
    target = run_b if second else run_a
    process = dedupe_process(target, index, CRASH_POINTS[point])
    assert process.wait(timeout=300) == CRASH, process.communicate()[1]
    code, _, err = cli("dedupe", "--run", target, "--index", index)
    assert code == 0, err
    assert_same_outputs(target, runs / ("referenceB" if second else "referenceA"))
    expected = LETTERS if second else LETTERS[:5]
    assert sorted(index_letters(index)) == sorted(row[0] for row in expected)
    assert sorted(p.name for p in index.iterdir()) == [".lock"] + [f"{n:06d}" for n in range(1, 2 + second)] + \
        ["manifest.json"]


def test_nightly_recovers_from_a_crash_in_the_first_shard(runs, tmp_path, config):
    """`petition nightly` has no --rebuild: the index a crash left must open as it was."""
    from pipeline.nightly import run_nightly
    dump = write_dump(tmp_path / "letters.csv", LETTERS)
    home = tmp_path / "home"
    index = home / "index"
    index.mkdir(parents=True)
    (index / ".000001.k2j4l1").mkdir()  # a shard's temporary folder, as a crash leaves it
    (index / ".000001.k2j4l1" / "shard").mkdir()
    (index / ".000001.k2j4l1" / "shard" / "letters.parquet").write_bytes(b"PAR1")
    (index / ".spark-3kq9x2" / "batch").mkdir(parents=True)  # the Spark engine's scratch folder
    run = run_nightly([dump], home, config)
    assert len(pd.read_parquet(run / "deduped.parquet")) == len(LETTERS)
    assert sorted(index_letters(index)) == sorted(row[0] for row in LETTERS)
    assert sorted(p.name for p in index.iterdir()) == [".lock", "000001", "manifest.json"]


# --- a night's features sent to Spark's workers by folder -------------------------------------------

def test_a_batch_saved_for_workers_pickles_as_its_folder_only_inside_the_block(runs, tmp_path):
    import pickle

    import numpy as np

    from pipeline.dedup.batch import Batch
    with DedupeIndex.open(runs / "reference_index", _hash()) as index:
        shard = index.shards[-1]
    night = Batch(shard.letters.copy(), {name: np.array(array) for name, array in shard.arrays.items()})
    whole = len(pickle.dumps(night))
    with night.saved_for_workers(tmp_path / "batch"):
        sent = pickle.dumps(night)
        there = pickle.loads(sent)
    assert len(sent) < 1000 < whole  # the folder's path, not the arrays
    pd.testing.assert_frame_equal(there.letters, night.letters)
    for name, array in night.arrays.items():
        assert isinstance(there.arrays[name], np.memmap) and np.array_equal(there.arrays[name], array), name
    assert night.directory is None and len(pickle.dumps(night)) == whole
    with pytest.raises(RuntimeError), night.saved_for_workers(tmp_path / "again"):
        raise RuntimeError("a failed Spark job")
    assert night.directory is None
    with shard.saved_for_workers(tmp_path / "unused"):  # a shard travels as its own folder
        assert pickle.loads(pickle.dumps(shard)).directory == shard.directory
    assert not (tmp_path / "unused").exists()


def _resident_kb(path):
    """Resident kB of this process's memory maps of ``path`` (Linux's /proc/self/smaps)."""
    total, inside = 0, False
    for line in open("/proc/self/smaps", encoding="utf-8"):
        if line[0] in "0123456789abcdef" and "-" in line.split()[0]:
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="memory maps are read from Linux's /proc")
def test_texts_and_vectors_read_from_the_index_leave_no_page_resident(runs, config):
    import numpy as np
    with DedupeIndex.open(runs / "reference_index", _hash()) as index:
        rows, features = np.arange(len(index)), config.dedupe.tfidf_features

        def resident(name):
            return sum(_resident_kb(shard.directory / f"{name}.npy") for shard in index.shards)
        titles = "".join(np.asarray(shard.arrays["title"]).tobytes().decode("utf-8") for shard in index.shards)
        assert len(index.shards) == 2 and resident("title") > 0  # maps read directly stay resident
        texts, vectors = index.texts(rows), index.vectors(rows, features)
        assert [resident(name) for name in ("text", "vec_data", "vec_indices")] == [0, 0, 0]
        assert "".join(index.texts(rows, "title")) == titles and resident("title") == 0
        assert len(texts) == len(rows) and all(texts) and vectors.shape == (len(rows), features) and vectors.nnz
        again = index.vectors(rows[::-1], features)
        assert index.texts(rows[::-1]) == texts[::-1] and (again[::-1] != vectors).nnz == 0


def test_a_night_staged_in_the_index_becomes_its_shard_its_keys_made_once(runs, tmp_path, monkeypatch):
    import numpy as np

    import pipeline.dedup.batch as batch_module
    from pipeline.dedup.batch import Batch
    from pipeline.dedup.blocking import sorted_keys
    with DedupeIndex.open(runs / "reference_index", _hash()) as index:
        shard = index.shards[-1]
        links = index.shard_links(len(index.shards) - 1)
    night = Batch(shard.letters.copy(), {name: np.array(array) for name, array in shard.arrays.items()})
    night.save(tmp_path / "direct")
    links.to_parquet(tmp_path / "direct" / "links.parquet", index=False)
    made = []

    def counted(arrays):
        made.append(len(arrays["bands"]))
        return sorted_keys(arrays)
    monkeypatch.setattr(batch_module, "sorted_keys", counted)
    with DedupeIndex.open(tmp_path / "index", _hash()) as index:
        staged = index.staged(night)
        assert staged.directory.parent.parent == (tmp_path / "index").resolve()
        assert staged.directory.parent.name.startswith(".000001.")  # removed on the next open if the run stops
        for name, array in night.arrays.items():
            assert isinstance(staged.arrays[name], np.memmap) and np.array_equal(staged.arrays[name], array), name
        index.add(staged, links)
    assert made == [len(night)]  # made once, while staging
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == [".lock", "000001", "manifest.json"]
    direct = sorted((tmp_path / "direct").iterdir())
    assert [p.name for p in direct] == sorted(p.name for p in (tmp_path / "index" / "000001").iterdir())
    for path in direct:
        assert path.read_bytes() == (tmp_path / "index" / "000001" / path.name).read_bytes(), path.name
