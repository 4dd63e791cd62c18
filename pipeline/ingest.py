"""Ingest: read the letter dumps offices export and map them onto the letter schema.

Inputs are CSV (UTF-8, UTF-8 with BOM or GB18030, detected line by line, so a file
stitched from two encodings still reads), XLSX, JSONL, Parquet, or folders of them.
The format is recognised from the file's first bytes, not its extension.

Nothing is lost: every source row ends up either in ``ingested.parquet`` or in
``quarantine.csv`` with its file, row, column and reason. Recoverable problems (a date
that cannot be read, an unknown channel) keep the row with the field empty and add a line
to ``ingest_warnings.csv``. ``source_row`` is the row as a person finds it: the line
number in a CSV or JSONL file, the Excel row number in a workbook (header = 1).
"""
import csv
import dataclasses
import hashlib
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
from tqdm import tqdm

from pipeline import schema
from pipeline.errors import PetitionError
from pipeline.rundir import stage

READERS = {}  # format name -> reader(path, sheet) -> RawTable


class RawTable:
    """A source file as read: its headers, its rows and the rows that failed to parse.

    ``frame`` holds the source columns (values as read) plus ``schema.SOURCE_ROW``;
    ``failed`` is a list of quarantine records (dicts keyed by QUARANTINE_COLUMNS).
    """

    def __init__(self, path, frame, failed=(), notes=()):
        self.path, self.frame, self.failed, self.notes = str(path), frame, list(failed), list(notes)

    @property
    def rows_in(self):
        return len(self.frame) + len(self.failed)


def _failure(path, row, column, reason, raw):
    return {schema.SOURCE_FILE: str(path), schema.SOURCE_ROW: row, schema.COLUMN: column,
            schema.REASON: reason, schema.RAW: raw}


def reader(name):
    def register(func):
        READERS[name] = func
        return func
    return register


# --- format detection ---------------------------------------------------------------

def detect_format(path):
    """Return 'xlsx', 'parquet', 'jsonl' or 'csv' from the file's first bytes."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return "jsonl"
    if b"\x00" in head:
        raise PetitionError(f"{path}: binary file of unknown format (not CSV, XLSX, JSONL or Parquet)")
    return "csv"


def decode_lines(data):
    """Split ``data`` into text lines, each decoded as UTF-8, else GB18030.

    Returns
    -------
    lines : list of str
        Lines with their ``\\n`` endings.
    notes : dict
        {1-based line number: 'gb18030' | 'undecodable'}; undecodable lines are decoded
        with replacement characters and their rows are quarantined by the CSV reader.
    """
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return _split_keep(data.decode("utf-8")), {}
    except UnicodeDecodeError:
        pass
    lines, notes = [], {}
    for number, raw in enumerate(data.split(b"\n"), start=1):
        for encoding in ("utf-8", "gb18030"):
            try:
                lines.append(raw.decode(encoding) + "\n")
                if encoding != "utf-8":
                    notes[number] = encoding
                break
            except UnicodeDecodeError:
                continue
        else:
            lines.append(raw.decode("utf-8", errors="replace") + "\n")
            notes[number] = "undecodable"
    if data and not data.endswith(b"\n"):
        lines[-1] = lines[-1][:-1]
    return [line for line in lines if line], notes


def _split_keep(text):
    """Split on '\\n' only: str.splitlines also splits on \\x1c, \\u2028 and others that occur
    inside letter text. '\\r\\n' endings stay whole for the csv module."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    return lines + [parts[-1]] if parts[-1] else lines


# --- readers --------------------------------------------------------------------------

@reader("csv")
def read_csv(path, sheet=None):
    """Read a CSV file, recovering from broken quoting.

    A record whose field count differs from the header's is quarantined. When such a
    record spans several lines (an unclosed quote swallowed the lines after it), only its
    first line is quarantined and parsing restarts on the next line, so one stray quote
    costs one row, not the rest of the file.
    """
    lines, line_notes = decode_lines(Path(path).read_bytes())
    if not any(line.strip() for line in lines):
        raise PetitionError(f"{path}: empty file")
    header = next(csv.reader([lines[0]]))
    rows, numbers, failed = [], [], []
    start = 1  # index into lines of the next record
    while start < len(lines):
        records = csv.reader(lines[start:])
        consumed = 0
        for record in records:
            first = start + consumed + 1           # 1-based line number where the record starts
            span = records.line_num - consumed
            consumed = records.line_num
            if not any(field.strip() for field in record):
                continue
            bad_lines = [n for n in range(first, first + span) if line_notes.get(n) == "undecodable"]
            raw = "".join(lines[first - 1:first - 1 + span]).rstrip("\n")
            if bad_lines:
                failed.append(_failure(path, first, "", f"undecodable bytes on line {bad_lines[0]} "
                                       "(neither UTF-8 nor GB18030)", raw))
            elif len(record) != len(header):
                if span > 1:
                    failed.append(_failure(path, first, "", "broken quoting: unclosed quote "
                                           f"(expected {len(header)} fields)", lines[first - 1].rstrip("\n")))
                    start = first  # resume on the line after the broken one
                    break
                failed.append(_failure(path, first, "", f"expected {len(header)} fields, "
                                       f"found {len(record)}", raw))
            else:
                rows.append(record)
                numbers.append(first)
        else:
            start = len(lines)
    frame = pd.DataFrame(rows, columns=_unique(header), dtype=object)
    frame[schema.SOURCE_ROW] = numbers
    notes = [f"lines read as GB18030: {sum(v == 'gb18030' for v in line_notes.values())}"] \
        if any(v == "gb18030" for v in line_notes.values()) else []
    return RawTable(path, frame, failed, notes)


def _unique(header):
    """Make header names unique (a repeated header would collapse columns)."""
    seen, names = {}, []
    for name in header:
        name = str(name).strip() if name is not None else ""
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}.{seen[name] - 1}")
    return names


@reader("xlsx")
def read_xlsx(path, sheet=None):
    """Read one sheet of a workbook (the first, or ``sheet`` by name or 1-based number)."""
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise PetitionError(f"{path}: not a readable XLSX workbook (truncated or corrupt: {exc})") from exc
    try:
        if sheet is None:
            sheet_obj = book.worksheets[0]
        elif str(sheet).isdigit() and str(sheet) not in book.sheetnames:
            sheet_obj = book.worksheets[int(sheet) - 1]
        else:
            sheet_obj = book[str(sheet)]
    except (KeyError, IndexError) as exc:
        raise PetitionError(f"{path}: no sheet {sheet!r}; sheets are {book.sheetnames}") from exc
    try:
        rows = sheet_obj.iter_rows(values_only=True)
        header = next(rows, None) or ()
        data, numbers = [], []
        for number, row in enumerate(rows, start=2):
            if any(value not in (None, "") for value in row):
                data.append(list(row[:len(header)]) + [None] * (len(header) - len(row)))
                numbers.append(number)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, EOFError) as exc:
        raise PetitionError(f"{path}: XLSX sheet could not be read (truncated or corrupt: {exc})") from exc
    finally:
        book.close()
    frame = pd.DataFrame(data, columns=_unique(header), dtype=object)
    frame[schema.SOURCE_ROW] = numbers
    return RawTable(path, frame)


@reader("jsonl")
def read_jsonl(path, sheet=None):
    """Read one JSON object per line; a line that is not an object is quarantined."""
    lines, notes = decode_lines(Path(path).read_bytes())
    records, numbers, failed = [], [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            failed.append(_failure(path, number, "", f"invalid JSON line: {exc}", line.rstrip("\n")))
            continue
        records.append(record)
        numbers.append(number)
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    frame = frame.astype(object)
    frame[schema.SOURCE_ROW] = numbers
    return RawTable(path, frame, failed)


@reader("parquet")
def read_parquet(path, sheet=None):
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise PetitionError(f"{path}: unreadable Parquet file ({exc})") from exc
    frame[schema.SOURCE_ROW] = np.arange(1, len(frame) + 1)
    return RawTable(path, frame)


def expand_inputs(inputs):
    """Return the files named by ``inputs`` (files, or folders searched recursively)."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and not p.name.startswith("."))
            if not found:
                raise PetitionError(f"{item}: folder holds no files")
            files.extend(found)
        elif item.is_file():
            files.append(item)
        else:
            raise PetitionError(f"{item}: no such file or folder")
    return files


def read_table(path, sheet=None):
    """Read ``path`` in whatever supported format it is; returns a ``RawTable``."""
    return READERS[detect_format(path)](path, sheet)


# --- values ---------------------------------------------------------------------------

def as_text(series):
    """Values as stripped strings; missing → ''; integral floats (Excel numbers) without '.0'."""
    if pd.api.types.is_string_dtype(series) and not pd.api.types.is_object_dtype(series):
        return series.fillna("").str.strip()  # a typed text column: vectorised

    def convert(value):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value).strip()
    return series.map(convert).astype("str")


_DATE = re.compile(
    r"^\s*(?P<year>\d{4})\s*[-/.年]\s*(?P<month>\d{1,2})\s*[-/.月]\s*(?P<day>\d{1,2})\s*日?"
    r"(?:[\sT]*(?P<hour>\d{1,2})\s*[:：时]\s*(?P<minute>\d{1,2})(?:\s*[:：分]\s*(?P<second>\d{1,2}))?)?")
_COMPACT_DATE = re.compile(r"^\s*(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})\s*$")


def parse_dates(series, excel_epoch="1899-12-30"):
    """Parse the date forms offices use.

    Accepts datetime objects, Excel serial numbers, and strings such as
    ``2019/2/28 11:25:05``, ``2019-02-28``, ``2019年2月28日``, ``2019.2.28`` and ``20190228``.

    Returns
    -------
    dates : Series of datetime64[ns]
        NaT where the value is empty or unreadable.
    bad : Series of bool
        True where a non-empty value could not be read.
    """
    dates = pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns]")
    is_datetime = series.map(lambda v: isinstance(v, (pd.Timestamp, np.datetime64)) or hasattr(v, "year"))
    if is_datetime.any():
        dates[is_datetime] = pd.to_datetime(series[is_datetime], errors="coerce")
    is_number = series.map(lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                           and not (isinstance(v, float) and np.isnan(v)))
    if is_number.any():
        serial = pd.to_numeric(series[is_number]).astype(float)
        ok = serial.between(1, 2958465)  # Excel's last day, 9999-12-31
        dates[serial[ok].index] = pd.Timestamp(excel_epoch) + pd.to_timedelta(serial[ok], unit="D")
    text = as_text(series[~is_datetime & ~is_number])
    for pattern in (_DATE, _COMPACT_DATE):
        parts = text.str.extract(pattern)
        parts = parts.dropna(subset=["year"])
        parts = parts.loc[dates[parts.index].isna()]
        if parts.empty:
            continue
        columns = {key: pd.to_numeric(parts[key]) if key in parts else 0
                   for key in ("year", "month", "day", "hour", "minute", "second")}
        frame = pd.DataFrame(columns).fillna(0)
        dates[parts.index] = pd.to_datetime(frame, errors="coerce")
    present = as_text(series) != ""
    return dates, present & dates.isna()


def lookup_words(values, words_by_key):
    """Map each value to the key whose word list holds it, exactly or as a substring.

    Returns a Series of keys, '' where nothing matched.
    """
    exact = {str(word).lower(): key for key, words in words_by_key.items() for word in words}

    def match(value):
        value = value.lower()
        if value in exact:
            return exact[value]
        hits = [(len(word), key) for word, key in exact.items() if word and word in value]
        return max(hits)[1] if hits else ""
    unique = {value: match(value) for value in values.unique() if value}
    return values.map(lambda v: unique.get(v, "")).astype(object)


def infer_level(values, level_patterns):
    """Level of each body name: the level whose pattern matches furthest right ('' if none)."""
    compiled = [(level, re.compile(p)) for level, patterns in level_patterns.items() for p in patterns]

    def level_of(value):
        best, best_pos = "", -1
        for level, pattern in compiled:
            for match in pattern.finditer(value):
                if match.start() > best_pos:
                    best, best_pos = level, match.start()
        return best
    unique = {value: level_of(value) for value in values.unique() if value}
    return values.map(lambda v: unique.get(v, "")).astype(object)


def record_hash(frame, columns):
    """A stable 16-hex-digit hash of the given text columns of each row."""
    rows = zip(*(frame[column].astype(str) for column in columns))
    return pd.Series([hashlib.sha1("\x1f".join(row).encode("utf-8")).hexdigest()[:16] for row in rows],
                     index=frame.index, dtype="str")


# --- mapping onto the schema ---------------------------------------------------------------

def to_schema(table, config):
    """Map a ``RawTable`` onto the letter schema.

    Returns
    -------
    letters : DataFrame
        ``schema.SCHEMA_COLUMNS`` + SOURCE_FILE, SOURCE_ROW, EXTRA.
    quarantine : list of dict
        Rows without text (and the table's parse failures).
    warnings : list of dict
        Recoverable problems, keyed by ``schema.WARNING_COLUMNS`` minus ``stage``.
    """
    raw = table.frame
    source_columns = [c for c in raw.columns if c != schema.SOURCE_ROW]
    mapping, unmapped = schema.map_columns(source_columns)
    if not set(mapping.values()) & set(schema.TEXT_COLUMNS):
        raise PetitionError(f"{table.path}: no text column; need one of "
                            f"{schema.ALIASES[schema.TITLE] + schema.ALIASES[schema.CONTENT]}; "
                            f"found {source_columns}")
    out = pd.DataFrame(index=raw.index)
    for source, column in mapping.items():
        out[column] = raw[source]
    for column in schema.SCHEMA_COLUMNS:
        if column not in out:
            out[column] = ""
    warnings = []

    def warn(mask, column, values, problem):
        for index in mask[mask].index:
            warnings.append({schema.SOURCE_FILE: table.path, schema.SOURCE_ROW: raw.at[index, schema.SOURCE_ROW],
                             schema.LETTER_ID: letters.at[index, schema.LETTER_ID], schema.COLUMN: column,
                             schema.VALUE: values[index], schema.PROBLEM: problem})

    letters = pd.DataFrame(index=raw.index)
    for column in schema.SCHEMA_COLUMNS:
        if column != schema.RECEIVED_AT:
            letters[column] = as_text(out[column])
    received_text = as_text(out[schema.RECEIVED_AT])
    missing_id = letters[schema.LETTER_ID] == ""
    if missing_id.any():
        hashed = "h" + record_hash(letters.assign(_date=received_text)[missing_id],
                                   [c for c in schema.SCHEMA_COLUMNS if c != schema.RECEIVED_AT] + ["_date"])
        letters.loc[missing_id, schema.LETTER_ID] = hashed

    letters[schema.RECEIVED_AT], bad_date = parse_dates(out[schema.RECEIVED_AT], config.ingest.excel_epoch)
    warn(bad_date, schema.RECEIVED_AT, received_text, "unreadable date; left empty")

    channel_text = letters[schema.CHANNEL]
    if schema.CHANNEL not in mapping.values():
        channel_text = pd.Series(config.ingest.default_channel, index=raw.index, dtype=object)
    letters[schema.CHANNEL] = lookup_words(channel_text, config.ingest.channel_words)
    warn((channel_text != "") & (letters[schema.CHANNEL] == ""), schema.CHANNEL, channel_text,
         f"unknown channel; expected one of {list(schema.CHANNELS)}")

    level_text = letters[schema.ADDRESSEE_LEVEL]
    level = infer_level(level_text, config.ingest.level_patterns)
    warn((level_text != "") & (level == ""), schema.ADDRESSEE_LEVEL, level_text, "unknown level; left empty")
    inferred = infer_level(letters[schema.ADDRESSEE], config.ingest.level_patterns)
    letters[schema.ADDRESSEE_LEVEL] = level.where(level != "", inferred)

    for column in schema.INTEGER_COLUMNS:
        text = letters[column].str.replace(r"\s*人$", "", regex=True)
        numbers = pd.to_numeric(text.where(text != ""), errors="coerce")
        bad = (text != "") & (numbers.isna() | (numbers < 0) | (numbers % 1 != 0))
        warn(bad, column, letters[column], "not a whole number; left empty")
        letters[column] = numbers.where(~bad).astype("Int64")

    letters[schema.SOURCE_FILE] = table.path
    letters[schema.SOURCE_ROW] = raw[schema.SOURCE_ROW].astype("int64")
    extra = zip(*(as_text(raw[column]) for column in unmapped))
    letters[schema.EXTRA] = ([json.dumps(dict(zip(unmapped, values)), ensure_ascii=False) for values in extra]
                             if unmapped else "")

    no_text = (letters[schema.TITLE] == "") & (letters[schema.CONTENT] == "")
    quarantine = list(table.failed) + [
        _failure(table.path, letters.at[i, schema.SOURCE_ROW], schema.TEXT_COLUMNS_NAME,
                 "no text (title and content empty)", _raw_json(raw.loc[i, source_columns]))
        for i in no_text[no_text].index]
    columns = list(schema.SCHEMA_COLUMNS) + [schema.SOURCE_FILE, schema.SOURCE_ROW, schema.EXTRA]
    return letters.loc[~no_text, columns].reset_index(drop=True), quarantine, warnings


def _raw_json(row):
    return json.dumps({k: "" if v is None else str(v) for k, v in row.items()}, ensure_ascii=False)


def drop_conflicting_ids(letters):
    """Quarantine rows whose ``letter_id`` was already used by an earlier row.

    Returns (kept letters, quarantine records): a repeated id with the same text is a
    row exported twice; with different text it is a registration error. Either way the
    first row keeps the id.
    """
    repeated = letters.duplicated(schema.LETTER_ID, keep="first")
    if not repeated.any():
        return letters, []
    involved = letters[letters.duplicated(schema.LETTER_ID, keep=False)]
    text_hash = record_hash(involved, schema.TEXT_COLUMNS)
    first_rows = ~repeated[involved.index]
    first = involved[first_rows].set_index(schema.LETTER_ID)
    first_hash = text_hash[first_rows].set_axis(first.index)
    records = []
    for i in repeated[repeated].index:
        letter_id = letters.at[i, schema.LETTER_ID]
        where = f"{first.at[letter_id, schema.SOURCE_FILE]} row {first.at[letter_id, schema.SOURCE_ROW]}"
        same = text_hash[i] == first_hash[letter_id]
        reason = (f"letter_id {letter_id} repeats {where} with the same text" if same else
                  f"letter_id {letter_id} already used by {where} with different content")
        records.append(_failure(letters.at[i, schema.SOURCE_FILE], letters.at[i, schema.SOURCE_ROW],
                                schema.LETTER_ID, reason,
                                _raw_json(letters.loc[i, list(schema.SCHEMA_COLUMNS)])))
    return letters[~repeated].reset_index(drop=True), records


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
    warnings : list of dict
    rows_in : int
        Source rows read (kept + quarantined), file-level failures excluded.
    notes : list of str
        One line per file: rows read, columns mapped and ignored.
    """
    files = expand_inputs(inputs)
    frames, quarantine, warnings, notes, rows_in = [], [], [], [], 0
    for path in (progress(files) if progress else files):
        try:
            table = read_table(path, sheet)
            letters, failed, warned = to_schema(table, config)
        except PetitionError as exc:
            if len(files) == 1:
                raise
            quarantine.append(_failure(path, "", "", str(exc), ""))
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


# --- stage ------------------------------------------------------------------------------------

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
    manifest. Returns the ``StageResult``.
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
        result.notes = {"files": notes, "warnings": len(warnings)}
    return result
