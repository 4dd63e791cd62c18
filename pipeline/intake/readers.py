"""Readers: each format offices export, read into a ``RawTable`` (headers, rows, failed rows).

The format comes from the file's first bytes, not its extension: XLSX (a zip), old binary XLS
(an OLE2 compound file, read with python-calamine), Parquet, JSONL (starts with ``{``), else CSV
(see ``encodings`` for its encoding and delimiter). ``source_row`` is the row as a person finds
it: the line number in a CSV or JSONL file, the Excel row number in a workbook (header = 1).

A problem in one row quarantines that row; a problem with the whole file raises
``PetitionError`` with one line naming the file (the stage skips the file when it is one of
several, and reports it).
"""
import csv
import json
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import python_calamine

from pipeline import schema
from pipeline.errors import PetitionError
from pipeline.intake import encodings
from pipeline.rundir import parquet_batches

READERS = {}  # format name -> reader(path, sheet, max_xlsx_bytes, chunk_rows) -> RawTable chunks
CHUNK_ROWS = 50_000
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # old binary .xls (also a password-protected .xlsx)


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


def failure(path, row, column, reason, raw):
    """A quarantine record (``row``: a line or Excel row number, '' for a whole file). Control
    characters in ``raw`` are written as visible escapes (``\\x00``), so the quarantine file
    stays readable and reads back."""
    raw = encodings.CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", raw)
    return {schema.SOURCE_FILE: str(path), schema.SOURCE_ROW: row if row == "" else int(row), schema.COLUMN: column,
            schema.REASON: reason, schema.RAW: raw}


def reader(name):
    def register(func):
        READERS[name] = func
        return func
    return register


def detect_format(path):
    """Return 'xlsx', 'xls', 'parquet', 'jsonl' or 'csv' from the file's first bytes."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(OLE2_MAGIC):
        return "xls"
    if head.startswith(b"PAR1"):
        return "parquet"
    codec = encodings.utf16_codec(head)
    text_head = head.decode(codec, errors="ignore").lstrip("\ufeff") if codec else head.decode("latin-1")
    if text_head.lstrip("\xef\xbb\xbf \t\r\n").startswith("{"):
        return "jsonl"
    if encodings.looks_binary(head):
        raise PetitionError(f"{path}: binary file of unknown format (not CSV, XLSX, XLS, JSONL or Parquet)")
    return "csv"


def read_tables(path, sheet=None, max_xlsx_bytes=None, chunk_rows=CHUNK_ROWS):
    """Read ``path`` in whatever supported format it is, as ``RawTable`` chunks of at most
    ``chunk_rows`` rows (kept or failed), one at a time; the last one carries the file's notes.

    ``sheet`` picks a workbook's sheet (name or 1-based number); ``max_xlsx_bytes`` refuses a
    workbook whose parts inflate to more bytes than that (None: no cap). A file the system
    will not let us read (permissions, a vanished file) is a ``PetitionError`` naming it.
    """
    try:
        yield from READERS[detect_format(path)](path, sheet, max_xlsx_bytes, chunk_rows)
    except OSError as exc:
        raise PetitionError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def read_table(path, sheet=None, max_xlsx_bytes=None):
    """The whole of ``path`` as one ``RawTable`` (``read_tables``), for files that fit in
    memory: training data, judged pairs."""
    tables = list(read_tables(path, sheet, max_xlsx_bytes))
    frame = pd.concat([table.frame for table in tables], ignore_index=True)
    return RawTable(path, frame, [f for table in tables for f in table.failed], tables[-1].notes)


def expand_inputs(inputs):
    """Return the files named by ``inputs`` (files, or folders searched recursively; hidden
    files in folders are left out: see ``hidden_files``)."""
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


def hidden_files(inputs):
    """The hidden files (name starting with '.') in the folders among ``inputs``: not read."""
    return sorted(p for item in map(Path, inputs) if item.is_dir()
                  for p in item.rglob(".*") if p.is_file())


def unique_names(header):
    """Header names, stripped, without control characters, and unique (a repeated header
    would collapse columns)."""
    seen, names = {}, []
    for name in header:
        name = encodings.CONTROL.sub("", str(name)).strip() if name is not None else ""
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}.{seen[name] - 1}")
    return names


# --- CSV ----------------------------------------------------------------------------------

class _Window:
    """A ``LineStream``'s lines by 1-based number, read as asked for and kept until forgotten:
    a record that turns out broken is read again from its next line."""

    def __init__(self, stream):
        self._stream, self._lines, self._encodings, self.base = iter(stream), [], [], 1
        self.count = 0  # lines read so far

    def get(self, number):
        """Line ``number`` (not yet forgotten), or None past the end of the file."""
        while number - self.base >= len(self._lines):
            item = next(self._stream, None)
            if item is None:
                return None
            self._lines.append(item[0])
            self._encodings.append(item[1])
            self.count += 1
        return self._lines[number - self.base]

    def encoding(self, number):
        return self._encodings[number - self.base]

    def lines_from(self, number):
        while (line := self.get(number)) is not None:
            yield line
            number += 1

    def text(self, first, span):
        return "".join(self.get(n) for n in range(first, first + span))

    def forget_before(self, number, keep=4096):
        """Drop the lines before ``number`` once more than ``keep`` of them are held."""
        if number - self.base > keep:
            del self._lines[:number - self.base], self._encodings[:number - self.base]
            self.base = number


@reader("csv")
def read_csv(path, sheet=None, max_xlsx_bytes=None, chunk_rows=CHUNK_ROWS):
    """Read a CSV file (any delimiter of ``encodings.DELIMITERS``), recovering from broken quoting.

    A record whose field count differs from the header's is quarantined. A record that spans
    several lines is a quoted field with line breaks, unless one of its later lines reads on
    its own as a record (``_swallowed_line``): then an unclosed quote swallowed that line.
    Either way only the broken record's first line is quarantined and parsing restarts on the
    next line, so one stray quote costs one row, not the rows after it. Every physical line is
    accounted for: header, blank, or part of a kept or quarantined record (the last chunk's
    notes count them).
    """
    stream = encodings.LineStream(path)
    lines = _Window(stream)
    try:
        header_line = lines.get(1)
    except UnicodeDecodeError as exc:
        raise PetitionError(f"{path}: starts as UTF-16 but is not valid UTF-16 ({exc.reason} at byte "
                            f"{exc.start}); export it again as UTF-8") from exc
    if header_line is None:
        raise PetitionError(f"{path}: empty file")
    delimiter = encodings.sniff_delimiter(header_line)
    try:
        header = unique_names(next(csv.reader([header_line], delimiter=delimiter)))
    except csv.Error as exc:
        raise PetitionError(f"{path}: header line is not CSV ({exc})") from exc
    counts = {"records": 0, "multi": 0, "record_lines": 0}
    limit = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)  # long fields are judged by ingest.max_text_chars
    try:
        chunks = _parse_records(path, lines, delimiter, len(header), chunk_rows, counts, stream)
        chunk = next(chunks)
        while chunk is not None:
            upcoming = next(chunks, None)
            if upcoming is None and not header_line.strip() and not counts["records"]:
                raise PetitionError(f"{path}: empty file")
            rows, numbers, failed = chunk
            frame = pd.DataFrame(rows, columns=header, dtype=object)
            frame[schema.SOURCE_ROW] = numbers
            notes = [] if upcoming is not None else _csv_notes(stream, delimiter, lines.count, counts)
            yield RawTable(path, frame, failed, notes)
            chunk = upcoming
    except UnicodeDecodeError as exc:
        raise PetitionError(f"{path}: not valid UTF-16 ({exc.reason}); export it again as UTF-8") from exc
    finally:
        csv.field_size_limit(limit)


def _csv_notes(stream, delimiter, line_count, counts):
    blank = line_count - 1 - counts["record_lines"]
    return stream.notes() + ([f"delimiter {delimiter!r}"] if delimiter != "," else []) + [
        f"{line_count} lines: header + {counts['records']} records"
        + (f" ({counts['multi']} over several lines)" if counts["multi"] else "")
        + (f" + {blank} blank" if blank > 0 else "")]


def _parse_records(path, lines, delimiter, width, chunk_rows, counts, stream):
    """Records of a ``_Window`` after its header line, in chunks of (rows, their line
    numbers, quarantine records); the last chunk may be empty. Counts the records, those over
    several lines and the lines they take in ``counts``; ``stream`` (the ``LineStream``) names
    the file's legacy encoding in messages."""
    rows, numbers, failed = [], [], []
    begin = 2  # line number of the next record
    while lines.get(begin) is not None:
        records = csv.reader(lines.lines_from(begin), delimiter=delimiter)
        consumed, restart = 0, None
        while restart is None:
            first = begin + consumed               # line number where the record starts
            try:
                record = next(records)
            except StopIteration:
                break
            except csv.Error as exc:
                failed.append(failure(path, first, "", f"unreadable CSV record: {exc}", lines.get(first).rstrip("\n")))
                counts["records"], counts["record_lines"] = counts["records"] + 1, counts["record_lines"] + 1
                restart = first
                break
            span = records.line_num - consumed
            consumed = records.line_num
            if not any(field.strip() for field in record):
                continue
            raw = lines.text(first, span).rstrip("\n")
            bad_lines = [n for n in range(first, first + span) if lines.encoding(n) == "undecodable"]
            swallowed = _swallowed_line(lines, first, span, width, delimiter) if span > 1 else None
            if bad_lines:
                failed.append(failure(path, first, "", f"undecodable bytes on line {bad_lines[0]} "
                                      f"(neither UTF-8 nor {encodings.LEGACY_NAMES[stream.encoding]})", raw))
            elif span > 1 and (len(record) != width or swallowed):
                reason = (f"broken quoting: unclosed quote (expected {width} fields)" if len(record) != width else
                          f"broken quoting: unclosed quote; the quoted field runs on over line {swallowed}, "
                          "which reads as a record of its own (read again after this row)")
                failed.append(failure(path, first, "", reason, lines.get(first).rstrip("\n")))
                span, restart = 1, first  # resume on the line after the broken one
            elif len(record) != width:
                failed.append(failure(path, first, "", f"expected {width} fields, found {len(record)}", raw))
            else:
                rows.append(record)
                numbers.append(first)
            counts["records"], counts["record_lines"] = counts["records"] + 1, counts["record_lines"] + span
            counts["multi"] += span > 1
            lines.forget_before(first + span)
            if len(rows) + len(failed) >= chunk_rows:
                yield rows, numbers, failed
                rows, numbers, failed = [], [], []
        if restart is None:
            break
        begin = restart + 1
    yield rows, numbers, failed


def _swallowed_line(lines, first, span, width, delimiter):
    """The first line after ``first`` within a multi-line record that reads as a record of its
    own: no quote, exactly ``width`` fields, and its leading fields (up to two, before the one
    whose quote runs on) of the same shape as the record's own (B2 and B3, 2026/11/2 and
    2026/11/3: letters, digits and punctuation alike). None if there is none. The shape keeps a
    letter body line that happens to hold ``width - 1`` commas from reading as a record."""
    opening = next(csv.reader([lines.get(first)], delimiter=delimiter))
    leading = min(2, len(opening) - 1)
    if leading < 1:
        return None
    for number in range(first + 1, first + span):
        line = lines.get(number).rstrip("\r\n")
        fields = line.split(delimiter)
        if ('"' not in line and len(fields) == width
                and all(_shape(fields[i]) == _shape(opening[i]) != "" for i in range(leading))):
            return number
    return None


def _shape(field):
    """A field's shape: runs of ASCII letters → A, digits → 9, other characters → C."""
    field = re.sub(r"[A-Za-z]+", "A", field.strip())
    field = re.sub(r"[0-9]+", "9", field)
    return re.sub(r"[^\x00-\x7f]+", "C", field)


# --- workbooks --------------------------------------------------------------------------

def _sheet_index(path, names, sheet):
    """Index of ``sheet`` (None: the first; a name; or a 1-based number) among ``names``."""
    if sheet is None and names:
        return 0
    if str(sheet) in names:
        return names.index(str(sheet))
    if str(sheet).isdigit() and 1 <= int(sheet) <= len(names):
        return int(sheet) - 1
    raise PetitionError(f"{path}: no sheet {sheet!r}; sheets are {names}")


def _sheet_tables(path, rows, chunk_rows):
    """``RawTable`` chunks of a sheet's rows (the first is the header; blank rows skipped)."""
    rows = iter(rows)
    header = list(next(rows, None) or ())
    names = unique_names(header)
    data, numbers = [], []
    for number, row in enumerate(rows, start=2):
        if any(value not in (None, "") for value in row):
            data.append(list(row[:len(header)]) + [None] * (len(header) - len(row)))
            numbers.append(number)
        if len(data) >= chunk_rows:
            yield _frame_table(path, data, names, numbers)
            data, numbers = [], []
    yield _frame_table(path, data, names, numbers)


def _frame_table(path, rows, columns, numbers, failed=()):
    frame = pd.DataFrame(rows, columns=columns, dtype=object)
    frame[schema.SOURCE_ROW] = numbers
    return RawTable(path, frame, failed)


def check_inflated_size(path, max_bytes):
    """Refuse a workbook whose parts inflate to more than ``max_bytes`` (a few hundred KB can
    hold a letter of tens of millions of characters), before anything is parsed."""
    with zipfile.ZipFile(path) as archive:
        inflated = sum(info.file_size for info in archive.infolist())
    if max_bytes is not None and inflated > max_bytes:
        raise PetitionError(f"{path}: workbook inflates to {inflated:,} bytes, above ingest.max_xlsx_bytes "
                            f"({max_bytes:,}); split it, or raise the setting if it is genuine")


@reader("xlsx")
def read_xlsx(path, sheet=None, max_xlsx_bytes=None, chunk_rows=CHUNK_ROWS):
    """Read one sheet of a workbook (the first, or ``sheet`` by name or 1-based number), row
    by row (openpyxl's read-only mode)."""
    try:
        check_inflated_size(path, max_xlsx_bytes)
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except PetitionError:
        raise
    except Exception as exc:  # openpyxl raises many types (zip, XML, KeyError, ...) for damaged files
        raise PetitionError(f"{path}: not a readable XLSX workbook (truncated or corrupt: {exc})") from exc
    try:
        sheet_obj = book.worksheets[_sheet_index(path, book.sheetnames, sheet)]
        yield from _sheet_tables(path, sheet_obj.iter_rows(values_only=True), chunk_rows)
    except PetitionError:
        raise
    except Exception as exc:  # as above, while the sheet's rows are read
        raise PetitionError(f"{path}: XLSX sheet could not be read (truncated or corrupt: {exc})") from exc
    finally:
        book.close()


@reader("xls")
def read_xls(path, sheet=None, max_xlsx_bytes=None, chunk_rows=CHUNK_ROWS):
    """Read one sheet of an old binary Excel workbook (.xls, Excel 97-2003, at most 65,536
    rows) with python-calamine."""
    try:
        book = python_calamine.CalamineWorkbook.from_path(str(path))
        index = _sheet_index(path, book.sheet_names, sheet)
        rows = book.get_sheet_by_index(index).to_python(skip_empty_area=False)
    except PetitionError:
        raise
    except Exception as exc:  # calamine raises its own types for damaged or encrypted files
        raise PetitionError(f"{path}: not a readable .xls workbook ({type(exc).__name__}: {exc}); if it is "
                            "password-protected, open it in Excel and save it as .xlsx without a password") from exc
    yield from _sheet_tables(path, ([None if value == "" else value for value in row] for row in rows), chunk_rows)


# --- JSONL and Parquet ----------------------------------------------------------------------

@reader("jsonl")
def read_jsonl(path, sheet=None, max_xlsx_bytes=None, chunk_rows=CHUNK_ROWS):
    """Read one JSON object per line; a line that is not an object (or nests too deep to read)
    is quarantined. Chunks have the columns of their own objects."""
    records, numbers, failed = [], [], []
    try:
        for number, (line, _) in enumerate(encodings.LineStream(path), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                records.append(record)
                numbers.append(number)
            except RecursionError:
                failed.append(failure(path, number, "", "invalid JSON line: nested too deeply to read",
                                      line.rstrip("\n")))
            except ValueError as exc:
                failed.append(failure(path, number, "", f"invalid JSON line: {exc}", line.rstrip("\n")))
            if len(records) + len(failed) >= chunk_rows:
                yield _json_table(path, records, numbers, failed)
                records, numbers, failed = [], [], []
    except UnicodeDecodeError as exc:
        raise PetitionError(f"{path}: starts as UTF-16 but is not valid UTF-16 ({exc.reason})") from exc
    yield _json_table(path, records, numbers, failed)


def _json_table(path, records, numbers, failed):
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    frame = frame.astype(object)
    frame.columns = unique_names(frame.columns)
    frame[schema.SOURCE_ROW] = numbers
    return RawTable(path, frame, failed)


@reader("parquet")
def read_parquet(path, sheet=None, max_xlsx_bytes=None, chunk_rows=CHUNK_ROWS):
    """Read a Parquet file batch by batch."""
    start = 1
    try:
        for batch in parquet_batches(path, chunk_rows):
            frame = batch.to_pandas()
            frame[schema.SOURCE_ROW] = np.arange(start, start + len(frame))
            start += len(frame)
            yield RawTable(path, frame)
        if start == 1:
            yield RawTable(path, pd.read_parquet(path).assign(**{schema.SOURCE_ROW: np.arange(1, 1)}))
    except PetitionError:
        raise
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise PetitionError(f"{path}: unreadable Parquet file ({exc})") from exc
