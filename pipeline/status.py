"""Handling of items over time: what a letter's status, reply and closing date say, and the
history of them that dumps give.

Registers export a letter's handling beside it (``schema.HANDLING_COLUMNS``: 办理状态, 办结日期,
答复意见, 答复时间, 责任单位, 满意度); a later dump may carry the same letter with a new status.
:class:`StatusHistory` (``archive/status.parquet`` in the home, beside the dedupe index) keeps a
row per letter when dedupe first sees its handling (or marks it 回流) and a row each time a dump
changes it: the latest row is the letter's status, the rows before it when it changed. A dump
without handling columns says nothing about status and changes nothing.

What the columns mean, for counting (:func:`is_tracked`, :func:`closed_by`, :func:`answered_by`):

* a letter is *tracked* when its export gave any of status, closing date, reply or reply date;
* *closed* (办结): status ``closed`` or a closing date;
* *answered* (反馈): closed, status ``answered`` or ``not_accepted`` (不予受理 is answered with its
  notice), or a reply or reply date: a reply without a status counts as answered;
* *open*: tracked, neither closed nor not accepted.
"""
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import schema
from pipeline.errors import PetitionError
from pipeline.lookup import is_in
from pipeline.rundir import write_parquet

TEXT_COLUMNS = (schema.HANDLING_BODY, schema.STATUS, schema.REPLY, schema.SATISFACTION)
STORED_TEXT = (schema.LETTER_ID, schema.STATUS_RECORDED_AT, schema.STATUS_RUN, schema.TITLE)
# what a dump says about a letter's handling: a change in any of these is a new history row
COMPARED = (schema.STATUS, schema.CLOSED_AT, schema.REPLY, schema.REPLIED_AT, schema.HANDLING_BODY,
            schema.SATISFACTION)


def with_handling(letters):
    """``letters`` with every handling column typed: texts stripped ('' when missing), dates
    as datetimes (NaT); columns an older run lacks are added empty. A copy."""
    letters = letters.copy()
    for column in TEXT_COLUMNS:
        values = letters[column] if column in letters else pd.Series("", index=letters.index)
        letters[column] = values.astype(object).where(values.notna(), "").astype(str).str.strip()
    for column in schema.HANDLING_DATES:
        values = letters[column] if column in letters else pd.Series(pd.NaT, index=letters.index)
        letters[column] = pd.to_datetime(values, errors="coerce")
    return letters


def is_tracked(letters):
    """True where the letter's export said anything of its handling (status, closing, reply)."""
    return ((letters[schema.STATUS] != "") | (letters[schema.REPLY] != "")
            | letters[schema.CLOSED_AT].notna() | letters[schema.REPLIED_AT].notna())


def has_closing(letters):
    """True when any of ``letters`` has a closing date or a status beyond ``accepted`` (ingest's
    fill for a tracked letter without one): what 办结率, 积案 and 回流 need. An export of
    replies alone has none."""
    return bool((letters[schema.CLOSED_AT].notna() | ~letters[schema.STATUS].isin(("", schema.ACCEPTED))).any())


def closed_by(letters, when):
    """True where the letter was closed by ``when`` (a time or a Series of them, exclusive): a
    closing date before it, or status ``closed`` without a date."""
    dated = letters[schema.CLOSED_AT].notna()
    return (dated & (letters[schema.CLOSED_AT] < when)) | (~dated & (letters[schema.STATUS] == schema.CLOSED))


def answered_by(letters, when):
    """True where the letter was answered by ``when`` (exclusive): closed by then, status
    ``answered`` or ``not_accepted``, a reply date before it, or a reply text without a date."""
    replied = letters[schema.REPLIED_AT].notna()
    return (closed_by(letters, when) | letters[schema.STATUS].isin((schema.ANSWERED, schema.NOT_ACCEPTED))
            | (replied & (letters[schema.REPLIED_AT] < when))
            | (~replied & (letters[schema.REPLY] != "")))


class StatusHistory:
    """Each letter's handling as the dumps gave it, a row per change, in ``path`` (Parquet).

    Parameters
    ----------
    path : Path
        ``archive/status.parquet`` of a home (:meth:`beside`).
    """

    def __init__(self, path):
        self.path = Path(path)

    @classmethod
    def of_home(cls, home):
        """The history of the home directory ``home`` (``home/archive/status.parquet``)."""
        return cls(Path(home) / "archive" / "status.parquet")

    @classmethod
    def beside(cls, index_directory):
        """The history of the home that holds the dedupe index at ``index_directory``."""
        return cls.of_home(Path(index_directory).parent)

    def rows(self):
        """Every row, oldest first (``schema.STATUS_HISTORY_COLUMNS``); empty when none yet."""
        if not self.path.exists():
            empty = pd.DataFrame({c: pd.Series(dtype=object) for c in STORED_TEXT})
            return with_handling(empty).assign(**{schema.REOPENED: pd.Series(dtype=bool)})
        try:
            return with_handling(pd.read_parquet(self.path))
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise PetitionError(f"{self.path}: unreadable status history ({exc})") from exc

    def latest(self, excluding_run=None):
        """One row per letter, its latest, indexed by ``letter_id``; without the rows the run
        named ``excluding_run`` recorded, when given."""
        rows = self.rows()
        if excluding_run is not None:
            rows = rows[rows[schema.STATUS_RUN] != excluding_run]
        return rows.drop_duplicates(schema.LETTER_ID, keep="last").set_index(schema.LETTER_ID)

    def titles(self, ids=None):
        """{letter id: title} of the letters ``ids`` (default: every letter) as each letter's
        first row holds it (masked when recorded)."""
        rows = self.rows()
        rows = (rows if ids is None else rows[is_in(rows[schema.LETTER_ID], ids)]).drop_duplicates(
            schema.LETTER_ID, keep="first")
        return dict(zip(rows[schema.LETTER_ID].astype(str), rows[schema.TITLE]))

    def record(self, letters, reopened, run_name, recorded_at=None):
        """Add a row for each of ``letters`` (the run's: ``letter_id``, ``title`` masked, the
        handling columns) that has none yet, and for each whose handling changed; a letter whose
        dump has no handling (not tracked) changes nothing. ``reopened`` (bool array) is kept as
        each letter's first row says. Returns the rows added."""
        letters = with_handling(letters).reset_index(drop=True).assign(**{schema.REOPENED: np.asarray(reopened)})
        rows = self.rows()
        latest = rows.drop_duplicates(schema.LETTER_ID, keep="last").set_index(schema.LETTER_ID)
        ids = letters[schema.LETTER_ID].astype(str)
        known = pd.Series(is_in(ids, latest.index), index=ids.index)
        before = latest.reindex(ids)
        changed = pd.Series(False, index=letters.index)
        for column in COMPARED:
            now, then = letters[column], before[column].set_axis(letters.index)
            changed |= ~((now == then) | (now.isna() & then.isna()))
        chosen = ~known | (is_tracked(letters) & changed)
        # a letter keeps the 回流 mark dedupe gave it when it first came in
        first_mark = before[schema.REOPENED].set_axis(letters.index).where(known, letters[schema.REOPENED])
        added = letters[chosen].assign(**{schema.REOPENED: first_mark[chosen].fillna(False).astype(bool)})
        added[schema.STATUS_RECORDED_AT] = recorded_at or time.strftime("%Y-%m-%dT%H:%M:%S")
        added[schema.STATUS_RUN] = run_name
        added = added[list(schema.STATUS_HISTORY_COLUMNS)]
        if len(added):
            write_parquet(pd.concat([rows, added], ignore_index=True) if len(rows) else added, self.path)
        return added


def with_latest(letters, latest):
    """``letters`` with the handling columns of the letters ``latest`` (``StatusHistory.latest``)
    holds replaced by their latest: an older dump's row of a letter shows its newest status."""
    letters = with_handling(letters)
    if latest is None or not len(latest):
        return letters
    ids = letters[schema.LETTER_ID].astype(str)
    found = is_in(ids, latest.index)
    if not found.any():
        return letters
    newest = latest.reindex(ids[found])
    for column in schema.HANDLING_COLUMNS:
        letters.loc[found, column] = newest[column].to_numpy()
    return letters


def known_closed_at(ids, latest, current):
    """When each letter of ``ids`` was known closed, for 回流 (``dedup.cases.reopened_letters``).

    Its closing date as this dump (``current``: ``letter_id`` and handling columns) or else the
    history (``latest``, :meth:`StatusHistory.latest`) gives it; ``pd.Timestamp.min`` (before any
    letter) when the history already had it closed without a date; NaT when it is not known
    closed. Returns a Series of datetimes in the order of ``ids``.
    """
    ids = pd.Index(ids).astype(str)
    then = latest.reindex(ids)
    now = with_handling(current).drop_duplicates(schema.LETTER_ID).set_index(schema.LETTER_ID).reindex(ids)
    dated = now[schema.CLOSED_AT].fillna(then[schema.CLOSED_AT])
    undated = (then[schema.STATUS] == schema.CLOSED) & then[schema.CLOSED_AT].isna()
    dated = pd.to_datetime(dated).astype("datetime64[ns]")
    dated[dated.isna() & undated] = pd.Timestamp.min
    return dated.reset_index(drop=True)
