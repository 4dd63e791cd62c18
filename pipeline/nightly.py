"""Nightly: run every stage over a dump into a dated run directory.

``petition nightly DUMP... --home DIR`` keeps everything an office accumulates under one
home directory (default ``runs/``)::

    runs/2025-06-01-3f9a1c2b/   one run per dump: date + the dump's hash
    runs/index/                 the dedupe index of every letter seen
    runs/decisions.sqlite       analysts' decisions (petition decide), honoured by dedupe
    runs/archive/letters/       every run's final letters, which reports read as history
    runs/.lock                  held while a run is going

* A lock stops two runs at once.
* The same dump again changes nothing: a dump whose hash a finished run already has is
  reported and skipped.
* A stage that fails leaves earlier outputs intact and exits non-zero with the reason; the
  next run over the same dump resumes at that stage.
"""
import fcntl
import hashlib
import time
from contextlib import contextmanager

from pipeline import classify, dedupe, ingest, normalize, report, schema, segment
from pipeline.errors import PetitionError
from pipeline.parallel import release_memory
from pipeline.rundir import RunDir, copy_file, read_manifest

STAGES = ("ingest", "normalize", "segment", "classify", "dedupe", "report")


def dump_fingerprint(files):
    """Hash of the input files' contents (order-independent), 12 hex digits."""
    digests = sorted(ingest.file_sha256(path) for path in files)
    return hashlib.sha256("".join(digests).encode()).hexdigest()[:12]


@contextmanager
def home_lock(home):
    """Hold an exclusive lock on ``home/.lock``; fail at once if another run holds it."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PetitionError(f"{home}: another nightly run is in progress (lock {home / '.lock'})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(time.strftime("%Y-%m-%dT%H:%M:%S"))
        handle.flush()
        yield


def finished_run(home, fingerprint):
    """The run directory that already processed this dump completely, or None."""
    for manifest in sorted(home.glob("*/manifest.json")):
        data = read_manifest(manifest)
        if (data.get(schema.MANIFEST_DUMP_FINGERPRINT) == fingerprint
                and set(STAGES) <= set(data.get(schema.MANIFEST_STAGES, {}))):
            return manifest.parent
    return None


def run_nightly(files, home, config, *, channel=None, dicts=(), model=None, period=None, today=None):
    """Run the stages not yet finished for this dump; returns the run directory.

    Parameters
    ----------
    files : list of Path
        The dump's files.
    home : Path
        Home of runs, index and archive.
    config : Config
        The loaded configuration, given to every stage.
    channel : str, optional
        Ingest: channel of files without a channel column.
    dicts : list of path
        Segment: extra jieba user dictionaries.
    model : path, optional
        Classify: model directory (default: ``classify.model_dir``).
    period : str, optional
        Report: month, quarter, half or year (default: ``report.period``).
    today : str, optional
        Date for the run directory's name (default: today).
    """
    fingerprint = dump_fingerprint(files)
    with home_lock(home):
        done = finished_run(home, fingerprint)
        if done:
            print(f"nightly: this dump was already processed in {done}; nothing to do")
            return done
        existing = sorted(home.glob(f"*-{fingerprint}"))
        run = RunDir(existing[-1] if existing else home / f"{today or time.strftime('%Y-%m-%d')}-{fingerprint}")
        run.record_fields({schema.MANIFEST_DUMP_FINGERPRINT: fingerprint})
        archive = home / "archive" / "letters"

        def archived_report():
            copy_file(run.output_path("dedupe"), archive / f"{run.path.name}.parquet")
            return report.run_stage(run, config, history=archive, period=period, dicts=dicts)
        steps = {
            "ingest": lambda: ingest.run_stage(run, config, inputs=files, channel=channel),
            "normalize": lambda: normalize.run_stage(run, config),
            "segment": lambda: segment.run_stage(run, config, dicts=dicts),
            "classify": lambda: classify.run_stage(run, config, model=model),
            "dedupe": lambda: dedupe.run_stage(run, config, index=home / "index"),
            "report": archived_report,
        }
        completed = set(run.manifest()[schema.MANIFEST_STAGES])
        resuming = False
        for name in STAGES:
            if name in completed and not resuming:
                print(f"nightly: {name} already done in {run.path}; skipped")
                continue
            resuming = True  # once one stage runs, every later stage runs again
            try:
                steps[name]()
                release_memory()  # one process runs every stage: the next starts from what this one left
            except PetitionError as exc:
                raise PetitionError(f"stage {name} failed: {exc}; outputs of earlier stages are kept in "
                                    f"{run.path}; run the same command again to resume from it") from exc
        notice = classify.recorded_notice(run)
        if notice:
            print(f"nightly: note: {notice}")
    return run.path
