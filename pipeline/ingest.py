"""Ingest: read the letter dumps offices export and map them onto the letter schema.

Inputs are CSV (UTF-8, GB18030, Big5 or UTF-16; comma, semicolon, tab or bar), XLSX, old
binary XLS, JSONL, Parquet, or folders of them; the format is recognised from the file's
content (the wing ``pipeline.intake``: ``readers``, ``encodings``, ``fields``).

Nothing is lost: every source row ends up either in ``ingested.parquet`` or in
``quarantine.csv`` with its file, row, column and reason. Recoverable problems (a date
that cannot be read, an unknown channel, control characters) keep the row and add a line to
``ingest_warnings.csv``. A file that cannot be read at all stops the stage when it is the only
one; among several it is skipped, quarantined whole, and counted in the stage's notes.
"""
import dataclasses
import hashlib

import pandas as pd
from tqdm import tqdm

from pipeline import schema
from pipeline.errors import PetitionError
from pipeline.intake.fields import FirstIds, record_hash, to_schema
from pipeline.intake.readers import expand_inputs, failure, hidden_files, read_tables
from pipeline.parallel import imap_chunks
from pipeline.rundir import stage


@dataclasses.dataclass
class IngestLog:
    """What ingest met besides the letters, filled as the files are read.

    quarantine : list of dict
        Quarantined rows, and one record (``source_row`` '') for every file skipped.
    warnings : list of dict
    rows_in : int
        Source rows read (kept + quarantined), skipped files excluded.
    rows_out : int
        Letters kept.
    notes : list of str
        One line per file: rows read, columns mapped and ignored, encoding and lines; or why
        it was skipped (or, for a file that failed part-way, what was kept of it).
    """

    quarantine: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)
    rows_in: int = 0
    rows_out: int = 0
    notes: list = dataclasses.field(default_factory=list)


def ingest_batches(files, config, log, sheet=None, progress=None):
    """Read and map every file, a batch of at most ``ingest.batch_rows`` rows at a time, mapped
    in ``ingest.processes`` forked workers (``mapped``).

    Yields DataFrames of letters (``schema.SCHEMA_COLUMNS`` and the handling, source and extra
    columns); fills ``log`` (an ``IngestLog``) as it goes. A file that cannot be read is skipped
    and quarantined whole when it is one of several (the only one raises ``PetitionError``);
    one that fails part-way keeps the rows read before. A letter id already used earlier in the
    dump is quarantined (``FirstIds``). Raises ``PetitionError`` when no file could be read.
    """
    first_ids, read_any = FirstIds(), False
    for path in (progress(files) if progress else files):
        rows_in = kept = 0
        try:
            tables = _then_failure(read_tables(path, sheet, config.ingest.max_xlsx_bytes, config.ingest.batch_rows))
            for result in imap_chunks(lambda table: mapped(table, config), tables, config.ingest.processes):
                if isinstance(result, PetitionError):
                    raise result
                letters, failed, warned, text_hash, (read, columns, notes) = result
                letters, conflicts = first_ids.drop_repeated(letters, text_hash)
                rows_in, kept = rows_in + read, kept + len(letters)
                log.rows_in += read
                log.rows_out += len(letters)
                log.quarantine += failed + conflicts
                log.warnings += warned
                read_any = True
                yield letters
        except PetitionError as exc:
            if len(files) == 1:
                raise
            log.quarantine.append(failure(path, "", "", str(exc), ""))
            log.notes.append(f"{path}: skipped: {exc}" if not rows_in else
                             f"{path}: stopped after {rows_in} rows ({kept} kept): {exc}")
            continue
        mapping, unmapped = schema.map_columns(c for c in columns if c != schema.SOURCE_ROW)
        log.notes.append(f"{path}: {rows_in} rows; columns {mapping}"
                         + (f"; kept in extra: {unmapped}" if unmapped else "")
                         + "".join(f"; {note}" for note in notes))
    if not read_any:
        raise PetitionError("no input file could be read: " + "; ".join(q[schema.REASON] for q in log.quarantine))


def _then_failure(tables):
    """``tables``, then the ``PetitionError`` that stopped reading them as the last item: the
    batches read before it are mapped and kept before it is raised, as when read one by one."""
    try:
        yield from tables
    except PetitionError as exc:
        yield exc


def mapped(table, config):
    """The work on a ``RawTable`` that does not depend on the batches before it, done in worker
    processes: ``to_schema(table, config)``, the hash of each letter's text (``FirstIds``), and
    what the file's note reads of the table (rows read, columns, notes). A ``PetitionError``
    (``_then_failure``) is passed on as it is."""
    if isinstance(table, PetitionError):
        return table
    letters, failed, warned = to_schema(table, config)
    return (letters, failed, warned, record_hash(letters, schema.TEXT_COLUMNS),
            (table.rows_in, list(table.frame.columns), table.notes))


def ingest(inputs, config, sheet=None, progress=None):
    """Read and map every input file (files or folders) into one DataFrame (``ingest_batches``).

    Returns (letters, quarantine, warnings, rows_in, notes): see ``IngestLog``.
    """
    log = IngestLog()
    letters = pd.concat(list(ingest_batches(expand_inputs(inputs), config, log, sheet, progress)), ignore_index=True)
    return letters, log.quarantine, log.warnings, log.rows_in, log.notes


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_stage(run, config, *, inputs, channel=None, sheet=None):
    """Ingest ``inputs`` (files or folders) into the run directory ``run`` (a ``RunDir``).

    ``channel`` replaces ``ingest.default_channel`` for files without a channel column;
    ``sheet`` is a workbook sheet name or 1-based number. Writes ``ingested.parquet``, the
    quarantine and ``ingest_warnings.csv``, and records the input files' hashes in the
    manifest; files skipped (unreadable) and hidden files left out are counted in the notes.
    Returns the ``StageResult``.
    """
    if channel:
        config = dataclasses.replace(config, ingest=dataclasses.replace(config.ingest, default_channel=channel))
    with stage(run, "ingest") as result:
        files, log = expand_inputs(inputs), IngestLog()
        with tqdm(desc="ingest", unit="row", disable=None) as bar:
            def counted(batches):
                for letters in batches:
                    bar.update(len(letters))
                    yield letters
            run.write_batches("ingest", counted(ingest_batches(files, config, log, sheet)))
        run.set_quarantine("ingest", log.quarantine)
        run.set_warnings("ingest", log.warnings)
        run.record_fields({schema.MANIFEST_INPUTS: [
            {schema.MANIFEST_INPUT_PATH: str(p), schema.MANIFEST_INPUT_SHA256: file_sha256(p)} for p in files]})
        result.rows_in, result.rows_out = log.rows_in, log.rows_out
        result.quarantined = sum(q[schema.SOURCE_ROW] != "" for q in log.quarantine)
        skipped = [q[schema.SOURCE_FILE] for q in log.quarantine if q[schema.SOURCE_ROW] == ""]
        hidden = hidden_files(inputs)
        result.notes = {"files": log.notes, "warnings": len(log.warnings)}
        if skipped:
            result.notes["files skipped (unreadable; in quarantine.csv)"] = f"{len(skipped)} of {len(files)}"
        if hidden:
            result.notes["hidden files left out"] = [str(p) for p in hidden]
    return result
