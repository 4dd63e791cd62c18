"""Fields: a ``RawTable`` mapped onto the letter schema, value by value.

Dates in the forms offices write, channel words, addressee levels (read, or inferred from the
body's name), whole-number counts, stable hashes for letters without an id. Every text field
loses its control characters (NUL, vertical tab and the like: they break spreadsheets; CR and
CRLF become LF, TAB and LF stay), with a warning naming what was removed. A row with a field
longer than ``ingest.max_text_chars`` is quarantined whole, not cut. Recoverable problems keep
the row with the field empty and add a warning; a warning's value is shown through the
identifier masks (``privacy.mask_identifiers``), never as an ID or phone number.
"""
import hashlib
import json
import re

import numpy as np
import pandas as pd

from pipeline import schema
from pipeline.errors import PetitionError
from pipeline.intake.encodings import CONTROL
from pipeline.intake.readers import failure
from pipeline.lookup import is_in
from pipeline.privacy import mask_identifiers

LINE_BREAK = re.compile(r"\r\n?")
CONTROL_OR_CR = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


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
    # boolean whatever the values (an empty Series maps to text, which ~ and & refuse)
    is_datetime = series.map(lambda v: isinstance(v, (pd.Timestamp, np.datetime64)) or hasattr(v, "year")).astype(bool)
    if is_datetime.any():
        dates[is_datetime] = pd.to_datetime(series[is_datetime], errors="coerce")
    is_number = series.map(lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                           and not (isinstance(v, float) and np.isnan(v))).astype(bool)
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


def remove_controls(values):
    """Text ``values`` without control characters; CR and CRLF become LF, TAB and LF stay.

    Returns (cleaned values, Series naming the characters removed from each value as visible
    escapes such as ``\\x00 \\x0b``, '' where none was).
    """
    removed = pd.Series("", index=values.index, dtype=object)
    affected = values.str.contains(CONTROL_OR_CR, regex=True)  # one scan; the few hits are fixed below
    if not affected.any():
        return values, removed
    fixed = values[affected].str.replace(LINE_BREAK, "\n", regex=True)
    removed[affected] = fixed.map(lambda v: " ".join(sorted({f"\\x{ord(c):02x}" for c in CONTROL.findall(v)})))
    return values.where(~affected, fixed.str.replace(CONTROL, "", regex=True)), removed


def to_schema(table, config):
    """Map a ``RawTable`` onto the letter schema.

    Returns
    -------
    letters : DataFrame
        ``schema.SCHEMA_COLUMNS`` + SOURCE_FILE, SOURCE_ROW, EXTRA.
    quarantine : list of dict
        Rows with a field above ``ingest.max_text_chars``, rows without text, and the table's
        parse failures.
    warnings : list of dict
        Recoverable problems, keyed by ``schema.WARNING_COLUMNS`` minus ``stage``.
    """
    raw = table.frame
    source_columns = [c for c in raw.columns if c != schema.SOURCE_ROW]
    mapping, unmapped = schema.map_columns(source_columns)
    if not set(mapping.values()) & set(schema.TEXT_COLUMNS):
        raise PetitionError(mask_identifiers(
            f"{table.path}: no text column; need one of "
            f"{schema.ALIASES[schema.TITLE] + schema.ALIASES[schema.CONTENT]}; found {source_columns}"))
    out = pd.DataFrame(index=raw.index)
    for source, column in mapping.items():
        out[column] = raw[source]
    for column in (*schema.SCHEMA_COLUMNS, *schema.HANDLING_COLUMNS):
        if column not in out:  # a missing date column as objects: parse_dates reads every type
            out[column] = pd.Series("", index=out.index, dtype=object) if column in schema.HANDLING_DATES else ""
    warnings = []

    def warn(mask, column, values, problem):
        for index in mask[mask].index:
            warnings.append({schema.SOURCE_FILE: table.path, schema.SOURCE_ROW: raw.at[index, schema.SOURCE_ROW],
                             schema.LETTER_ID: letters.at[index, schema.LETTER_ID], schema.COLUMN: column,
                             schema.VALUE: mask_identifiers(str(values[index])), schema.PROBLEM: problem})

    letters = pd.DataFrame(index=raw.index)
    texts, removed = {}, {}  # source header -> cleaned text / control characters removed
    source_of = {column: source for source, column in mapping.items()}
    for column in (*schema.SCHEMA_COLUMNS, *schema.HANDLING_COLUMNS):
        if column not in (schema.RECEIVED_AT, *schema.HANDLING_DATES):
            letters[column], removed[source_of.get(column, column)] = remove_controls(as_text(out[column]))
            texts[source_of.get(column, column)] = letters[column]
    for column in unmapped:
        texts[column], removed[column] = remove_controls(as_text(raw[column]))
    received_text = as_text(out[schema.RECEIVED_AT])
    missing_id = letters[schema.LETTER_ID] == ""
    if missing_id.any():
        hashed = "h" + record_hash(letters.assign(_date=received_text)[missing_id],
                                   [c for c in schema.SCHEMA_COLUMNS if c != schema.RECEIVED_AT] + ["_date"])
        letters.loc[missing_id, schema.LETTER_ID] = hashed

    letters[schema.RECEIVED_AT], bad_date = parse_dates(out[schema.RECEIVED_AT], config.ingest.excel_epoch)
    warn(bad_date, schema.RECEIVED_AT, received_text, "unreadable date; left empty")

    handling_fields(letters, out, mapping, config, warn)

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
    for source, characters in removed.items():
        warn(characters != "", mapping.get(source, source), characters, "control characters removed")

    letters[schema.SOURCE_FILE] = table.path
    letters[schema.SOURCE_ROW] = raw[schema.SOURCE_ROW].astype("int64")
    extra = zip(*(texts[column] for column in unmapped))
    letters[schema.EXTRA] = ([json.dumps(dict(zip(unmapped, values)), ensure_ascii=False) for values in extra]
                             if unmapped else "")

    max_chars = config.ingest.max_text_chars
    too_long = pd.Series(False, index=raw.index)
    quarantine = list(table.failed)
    for source, values in texts.items():
        lengths = values.str.len()
        for i in lengths[(lengths > max_chars) & ~too_long].index:
            quarantine.append(failure(table.path, letters.at[i, schema.SOURCE_ROW], source,
                                      f"{lengths[i]:,} characters in {source}, above ingest.max_text_chars "
                                      f"({max_chars:,}); the letter is not cut: check the export",
                                      _raw_json(raw.loc[i, source_columns], max_chars)))
        too_long |= lengths > max_chars
    no_text = (letters[schema.TITLE] == "") & (letters[schema.CONTENT] == "") & ~too_long
    quarantine += [
        failure(table.path, letters.at[i, schema.SOURCE_ROW], schema.TEXT_COLUMNS_NAME,
                "no text (title and content empty)", _raw_json(raw.loc[i, source_columns]))
        for i in no_text[no_text].index]
    columns = [*schema.SCHEMA_COLUMNS, *schema.HANDLING_COLUMNS, schema.SOURCE_FILE, schema.SOURCE_ROW, schema.EXTRA]
    return letters.loc[~no_text & ~too_long, columns].reset_index(drop=True), quarantine, warnings


def handling_fields(letters, out, mapping, config, warn):
    """Fill ``letters``' handling columns (``schema.HANDLING_COLUMNS``) from ``out`` (the source
    values by schema column; ``mapping`` says which the export has), in place.

    Dates are read as ``received_at`` is. A status becomes its code (``status.values``); a value
    no word matches is kept as written, with a warning (``warn(mask, column, values,
    problem)``). A letter of an export with a status, closing or reply column but no status
    value is ``accepted``: the register tracks it and has nothing more to say about it yet.
    """
    for column in schema.HANDLING_DATES:
        text = as_text(out[column])
        letters[column], bad = parse_dates(out[column], config.ingest.excel_epoch)
        warn(bad, column, text, "unreadable date; left empty")
    written = letters[schema.STATUS]
    code = lookup_words(written, config.status.values)
    unknown = (written != "") & (code == "")
    warn(unknown, schema.STATUS, written, f"unknown status, kept as written (counted as open); known: "
                                          f"{list(schema.STATUSES)} (status.values)")
    letters[schema.STATUS] = code.where(~unknown, written)
    if set(mapping.values()) & {schema.STATUS, schema.CLOSED_AT, schema.REPLY, schema.REPLIED_AT}:
        letters.loc[letters[schema.STATUS] == "", schema.STATUS] = schema.ACCEPTED


def _raw_json(row, max_chars=None):
    """A row as JSON for the quarantine; values above ``max_chars`` cut, saying how much was."""
    def shown(value):
        text = "" if value is None else str(value)
        if max_chars is not None and len(text) > max_chars:
            return text[:max_chars] + f"…[{len(text) - max_chars:,} more characters not shown]"
        return text
    return json.dumps({k: shown(v) for k, v in row.items()}, ensure_ascii=False)


class FirstIds:
    """The letter ids a dump has used so far, each with where it was first used and a hash of
    that row's text, so a later row repeating the id is quarantined whichever batch it comes in
    (about 150 bytes per letter of the dump)."""

    def __init__(self):
        self._first = {}  # letter id -> (source file, source row, text hash)

    def drop_repeated(self, letters, text_hash=None):
        """Quarantine rows whose ``letter_id`` an earlier row (of this batch or an earlier one)
        already used. ``text_hash``: ``record_hash(letters, schema.TEXT_COLUMNS)``, when the
        caller has it.

        Returns (kept letters, quarantine records): a repeated id with the same text is a row
        exported twice; with different text it is a registration error. Either way the first
        row keeps the id.
        """
        ids = letters[schema.LETTER_ID]
        repeated = ids.duplicated(keep="first") | is_in(ids, self._first.keys())
        text_hash = record_hash(letters, schema.TEXT_COLUMNS) if text_hash is None else text_hash
        first = letters[~repeated]
        self._first.update(zip(first[schema.LETTER_ID], zip(first[schema.SOURCE_FILE], first[schema.SOURCE_ROW],
                                                             text_hash[~repeated])))
        records = []
        for i in repeated[repeated].index:
            letter_id = letters.at[i, schema.LETTER_ID]
            source_file, source_row, first_hash = self._first[letter_id]
            where = f"{source_file} row {source_row}"
            reason = (f"letter_id {letter_id} repeats {where} with the same text" if text_hash[i] == first_hash else
                      f"letter_id {letter_id} already used by {where} with different content")
            records.append(failure(letters.at[i, schema.SOURCE_FILE], letters.at[i, schema.SOURCE_ROW],
                                   schema.LETTER_ID, reason, _raw_json(letters.loc[i, list(schema.SCHEMA_COLUMNS)])))
        return (letters[~repeated].reset_index(drop=True) if repeated.any() else letters), records
