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
from pipeline.intake.fields import drop_conflicting_ids, to_schema
from pipeline.intake.readers import expand_inputs, failure, hidden_files, read_table
from pipeline.rundir import stage


def ingest(inputs, config, sheet=None, progress=None):
    """Read and map every input file.

    Parameters
    ----------
    inputs : list of str or Path
        Files or folders.
    config : Config
    sheet : str, optional
        Workbook sheet name or 1-based number (default: first sheet).
    progress : callable, optional
        Wraps the file list (e.g. ``tqdm``).

    Returns
    -------
    letters : DataFrame
    quarantine : list of dict
        Quarantined rows, and one record (``source_row`` '') for every file skipped.
    warnings : list of dict
    rows_in : int
        Source rows read (kept + quarantined), skipped files excluded.
    notes : list of str
        One line per file: rows read, columns mapped and ignored, encoding and lines; or why
        it was skipped.
    """
    files = expand_inputs(inputs)
    frames, quarantine, warnings, notes, rows_in = [], [], [], [], 0
    for path in (progress(files) if progress else files):
        try:
            table = read_table(path, sheet, config.ingest.max_xlsx_bytes)
            letters, failed, warned = to_schema(table, config)
        except PetitionError as exc:
            if len(files) == 1:
                raise
            quarantine.append(failure(path, "", "", str(exc), ""))
            notes.append(f"{path}: skipped: {exc}")
            continue
        rows_in += table.rows_in
        frames.append(letters)
        quarantine.extend(failed)
        warnings.extend(warned)
        mapping, unmapped = schema.map_columns(c for c in table.frame.columns if c != schema.SOURCE_ROW)
        notes.append(f"{path}: {table.rows_in} rows; columns {mapping}"
                     + (f"; kept in extra: {unmapped}" if unmapped else "")
                     + "".join(f"; {note}" for note in table.notes))
    if not frames:
        raise PetitionError("no input file could be read: " + "; ".join(q[schema.REASON] for q in quarantine))
    letters, conflicts = drop_conflicting_ids(pd.concat(frames, ignore_index=True))
    return letters, quarantine + conflicts, warnings, rows_in, notes


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
        files = expand_inputs(inputs)
        letters, quarantine, warnings, rows_in, notes = ingest(
            files, config, sheet=sheet,
            progress=lambda items: tqdm(items, desc="ingest", unit="file", disable=None))
        run.write("ingest", letters)
        run.set_quarantine("ingest", quarantine)
        run.set_warnings("ingest", warnings)
        run.record_fields({schema.MANIFEST_INPUTS: [
            {schema.MANIFEST_INPUT_PATH: str(p), schema.MANIFEST_INPUT_SHA256: file_sha256(p)} for p in files]})
        result.rows_in, result.rows_out = rows_in, len(letters)
        result.quarantined = sum(q[schema.SOURCE_ROW] != "" for q in quarantine)
        skipped = [q[schema.SOURCE_FILE] for q in quarantine if q[schema.SOURCE_ROW] == ""]
        hidden = hidden_files(inputs)
        result.notes = {"files": notes, "warnings": len(warnings)}
        if skipped:
            result.notes["files skipped (unreadable; in quarantine.csv)"] = f"{len(skipped)} of {len(files)}"
        if hidden:
            result.notes["hidden files left out"] = [str(p) for p in hidden]
    return result
