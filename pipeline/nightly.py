"""Nightly: run every stage over a dump into a dated run directory.

``petition nightly DUMP... --home DIR`` keeps everything an office accumulates under one
home directory (default ``runs/``)::

    runs/2025-06-01-3f9a1c2b/   one run per dump: date + the dump's hash
    runs/index/                 the dedupe index of every letter seen
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
import json
import time
from contextlib import contextmanager
from pathlib import Path

from pipeline import ingest
from pipeline.errors import PetitionError
from pipeline.rundir import RunDir, write_parquet

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
        data = json.loads(manifest.read_text(encoding="utf-8"))
        if data.get("dump_fingerprint") == fingerprint and set(STAGES) <= set(data.get("stages", {})):
            return manifest.parent
    return None


def stage_commands(run, files, index, archive, options):
    """The ``petition`` argument list of each stage."""
    return {
        "ingest": ["ingest", *map(str, files), "--run", str(run), *options.get("ingest", [])],
        "normalize": ["normalize", "--run", str(run)],
        "segment": ["segment", "--run", str(run), *options.get("segment", [])],
        "classify": ["classify", "--run", str(run), *options.get("classify", [])],
        "dedupe": ["dedupe", "--run", str(run), "--index", str(index)],
        "report": ["report", "--run", str(run), "--history", str(archive)],
    }


def run_nightly(files, home, config_path=None, options=None, today=None):
    """Run the stages not yet finished for this dump; returns the run directory.

    Parameters
    ----------
    files : list of Path
        The dump's files.
    home : Path
        Home of runs, index and archive.
    config_path : str, optional
        Passed to every stage as ``--config``.
    options : dict, optional
        Extra arguments per stage, e.g. ``{"segment": ["--dict", "places.txt"]}``.
    today : str, optional
        Date for the run directory's name (default: today).
    """
    from pipeline.cli import main as petition

    fingerprint = dump_fingerprint(files)
    with home_lock(home):
        done = finished_run(home, fingerprint)
        if done:
            print(f"nightly: this dump was already processed in {done}; nothing to do")
            return done
        existing = sorted(home.glob(f"*-{fingerprint}"))
        run = RunDir(existing[-1] if existing else home / f"{today or time.strftime('%Y-%m-%d')}-{fingerprint}")
        run.record_fields(dump_fingerprint=fingerprint)
        archive = home / "archive" / "letters"
        commands = stage_commands(run.path, files, home / "index", archive, options or {})
        completed = set(run.manifest()["stages"])
        resuming = False
        for name in STAGES:
            if name in completed and not resuming:
                print(f"nightly: {name} already done in {run.path}; skipped")
                continue
            resuming = True  # once one stage runs, every later stage runs again
            if name == "report":
                write_parquet(run.read("dedupe"), archive / f"{run.path.name}.parquet")
            argv = (["--config", config_path] if config_path else []) + commands[name]
            if petition(argv) != 0:
                raise PetitionError(f"stage {name} failed; outputs of earlier stages are kept in {run.path}; "
                                    "run the same command again to resume from it")
    return run.path


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "nightly", help="run every stage over a dump into a dated run directory",
        description=__doc__.split("\n\n")[1])
    parser.add_argument("inputs", nargs="+", help="the dump: files or folders")
    parser.add_argument("--home", default="runs", help="home of runs, index and archive (default: runs)")
    parser.add_argument("--channel", help="passed to ingest: channel of files without one")
    parser.add_argument("--dict", action="append", default=[], metavar="FILE",
                        help="passed to segment: extra jieba user dictionary")
    parser.add_argument("--model", help="passed to classify: model directory")
    parser.set_defaults(func=run_cli)


def run_cli(args, config):
    files = ingest.expand_inputs(args.inputs)
    options = {"ingest": ["--channel", args.channel] if args.channel else [],
               "segment": [arg for path in args.dict for arg in ("--dict", path)],
               "classify": ["--model", args.model] if args.model else []}
    start = time.perf_counter()
    run = run_nightly(files, Path(args.home), args.config, options)
    print(f"nightly: {run} complete in {time.perf_counter() - start:.1f} s")
