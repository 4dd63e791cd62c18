"""Analyst decisions: what people in the office decided about letters, kept for every later run.

One SQLite file in the home directory, beside the dedupe index (``<home>/decisions.sqlite``),
written through the standard ``sqlite3`` module in WAL mode, so that two people deciding at
once both succeed (a writer waits up to ``BUSY_TIMEOUT`` seconds for the other). The file is not
part of the index: moving the index aside with ``--rebuild`` leaves every decision in place.

Rows are only ever appended (id, kind, letter_a, letter_b, value, user, at, note, undoes):

- ``same A B``: the two letters are one matter (a must-link for dedupe);
- ``different A B``: they are not (a cannot-link, which holds even through a chain of links);
- ``detach L``: the letter leaves the case it is in; it starts its own case, joined to other
  letters only by ``same`` decisions taken after the detach (earlier ones it overrides);
- ``topic L CODES``: the letter's topics are corrected (value: "|"-joined topic codes);
- ``undo N``: cancels decision N (an undo may be undone too, which puts N back in force).

``DecisionStore.effective()`` reads the decisions in force: undone ones are left out and, for one
pair of letters (same/different) or one letter (topic, detach), the latest decision (highest id:
ids follow the order of writing, clocks of two machines need not) wins. Only letter ids are
stored about letters; the note is the analyst's own words.
"""
import dataclasses
import datetime as dt
import fcntl
import getpass
import json
import sqlite3
from pathlib import Path

from pipeline import schema
from pipeline.errors import PetitionError

FILE_NAME = "decisions.sqlite"
SCHEMA_VERSION = 1
# Seconds a writer waits for another one's transaction (a decision is one short insert): long
# enough for any number of people at once, short enough to report a stuck file.
BUSY_TIMEOUT = 30.0

PAIR_KINDS = (schema.DECISION_SAME, schema.DECISION_DIFFERENT)
LETTER_KINDS = (schema.DECISION_DETACH, schema.DECISION_TOPIC)
COLUMNS = (schema.DECISION_ID, schema.DECISION_KIND, schema.LETTER_A, schema.LETTER_B, schema.VALUE,
           schema.DECISION_USER, schema.DECISION_AT, schema.DECISION_NOTE, schema.DECISION_UNDOES)
CREATE = f"""CREATE TABLE IF NOT EXISTS decisions (
    {schema.DECISION_ID} INTEGER PRIMARY KEY AUTOINCREMENT,
    {schema.DECISION_KIND} TEXT NOT NULL CHECK ({schema.DECISION_KIND} IN
        ({", ".join(repr(kind) for kind in schema.DECISION_KINDS)})),
    {schema.LETTER_A} TEXT,
    {schema.LETTER_B} TEXT,
    {schema.VALUE} TEXT,
    {schema.DECISION_USER} TEXT NOT NULL,
    {schema.DECISION_AT} TEXT NOT NULL,
    {schema.DECISION_NOTE} TEXT NOT NULL DEFAULT '',
    {schema.DECISION_UNDOES} INTEGER REFERENCES decisions ({schema.DECISION_ID})
)"""
SIGNS = {schema.DECISION_SAME: "=", schema.DECISION_DIFFERENT: "≠"}


@dataclasses.dataclass(frozen=True)
class Decision:
    """One row of the store; ``status`` (filled by ``DecisionStore.list``) says whether it is in
    force, undone by a later decision, or replaced by a later one on the same pair or letter."""
    id: int
    kind: str
    letter_a: str | None
    letter_b: str | None
    value: str | None
    user: str
    at: str
    note: str
    undoes: int | None
    status: str = ""

    def describe(self):
        """What was decided, in a few characters: ``188396 ≠ 283371``, ``detach 188396``."""
        if self.kind in SIGNS:
            return f"{self.letter_a} {SIGNS[self.kind]} {self.letter_b}"
        if self.kind == schema.DECISION_TOPIC:
            return f"topic {self.letter_a} = {self.value}"
        if self.kind == schema.DECISION_UNDO:
            return f"undo {self.undoes}"
        return f"{self.kind} {self.letter_a}"

    def as_dict(self):
        return dataclasses.asdict(self)


def pair(a, b):
    """The pair (a, b) with a < b, the form every pair of ``Effective`` takes."""
    return (a, b) if a < b else (b, a)


@dataclasses.dataclass(frozen=True)
class Effective:
    """The decisions in force.

    Attributes
    ----------
    must_link : set of (str, str)
        Pairs (a < b) decided ``same``: one case, whatever the scores say.
    cannot_link : set of (str, str)
        Pairs (a < b) decided ``different``: never one case, not even through other letters.
    detached : dict of str to str
        {letter id: ISO time of its detach}: the letter keeps no link dedupe finds; it starts its
        own case, which only ``must_link`` pairs join to others.
    topics : dict of str to list of str
        {letter id: its corrected topic codes}.
    """
    must_link: set = dataclasses.field(default_factory=set)
    cannot_link: set = dataclasses.field(default_factory=set)
    detached: dict = dataclasses.field(default_factory=dict)
    topics: dict = dataclasses.field(default_factory=dict)

    def conflicts(self):
        """Pairs of ``cannot_link`` whose letters ``must_link`` joins through other letters
        (A = B, B = C, A ≠ C): sorted; a later decision must settle them."""
        parent = {}

        def root(letter):
            parent.setdefault(letter, letter)
            while parent[letter] != letter:
                parent[letter] = parent[parent[letter]]
                letter = parent[letter]
            return letter
        for a, b in self.must_link:
            parent[root(a)] = root(b)
        return sorted((a, b) for a, b in self.cannot_link if root(a) == root(b))


def resolve(rows):
    """The ``Effective`` decisions of ``rows`` (in id order) and {id: status} of every row."""
    undone_by = {}
    for row in reversed(rows):  # an undo is later than what it undoes: its own status is known
        if row.kind == schema.DECISION_UNDO and row.id not in undone_by:
            undone_by[row.undoes] = row.id
    latest, replaced_by = {}, {}
    for row in rows:
        if row.id in undone_by or row.kind == schema.DECISION_UNDO:
            continue
        key = pair(row.letter_a, row.letter_b) if row.kind in PAIR_KINDS else (row.kind, row.letter_a)
        if key in latest:
            replaced_by[latest[key].id] = row.id
        latest[key] = row
    effective = Effective()
    detach_ids = {row.letter_a: row.id for row in latest.values() if row.kind == schema.DECISION_DETACH}
    for key, row in latest.items():
        if row.kind == schema.DECISION_SAME:
            overriding = [detach_ids[letter] for letter in key if detach_ids.get(letter, 0) > row.id]
            if overriding:
                replaced_by[row.id] = max(overriding)
            else:
                effective.must_link.add(key)
        elif row.kind == schema.DECISION_DIFFERENT:
            effective.cannot_link.add(key)
        elif row.kind == schema.DECISION_DETACH:
            effective.detached[row.letter_a] = row.at
        else:
            effective.topics[row.letter_a] = row.value.split("|")
    statuses = {row.id: (f"undone by {undone_by[row.id]}" if row.id in undone_by
                         else f"replaced by {replaced_by[row.id]}" if row.id in replaced_by else "in force")
                for row in rows}
    return effective, statuses


def letter_id(value, what="letter id"):
    """``value`` stripped, refused when it is not a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise PetitionError(f"{what} must be a non-empty string, got {value!r}")
    return value.strip()


def topic_codes(value):
    """``value``'s codes ("|"-joined, or a list), each non-empty, in order, without repeats."""
    parts = value.split("|") if isinstance(value, str) else list(value or ())
    codes = [letter_id(code, "topic code") for code in parts] if parts else []
    if not codes:
        raise PetitionError("a topic decision needs at least one topic code")
    return list(dict.fromkeys(codes))


class DecisionStore:
    """The decisions file at ``path`` (created, with its folder, by the first ``add``).

    Parameters
    ----------
    path : str or Path
        The SQLite file, normally ``<home>/decisions.sqlite`` (see ``for_home``, ``for_index``).
    timeout : float
        Seconds a writer waits for another writer.
    """

    def __init__(self, path, *, timeout=BUSY_TIMEOUT):
        self.path = Path(path)
        self.timeout = timeout

    @classmethod
    def for_home(cls, home, **options):
        """The store of the home directory ``home`` (the one holding ``index/``)."""
        return cls(Path(home) / FILE_NAME, **options)

    @classmethod
    def for_index(cls, index_dir, **options):
        """The store beside the dedupe index ``index_dir``: ``index_dir.parent / decisions.sqlite``."""
        return cls(Path(index_dir).parent / FILE_NAME, **options)

    def _connect(self, create):
        """A connection in autocommit mode (transactions are explicit), or None when the file
        does not exist and ``create`` is false."""
        if not create and not self.path.exists():
            return None
        connection = None
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                connection.close()
                raise PetitionError(f"{self.path}: decisions schema version {version} is newer than this "
                                    f"petition reads ({SCHEMA_VERSION}); upgrade petition")
            if version < SCHEMA_VERSION and create:
                self._create(connection)
            return connection
        except sqlite3.DatabaseError as exc:
            if connection is not None:
                connection.close()
            raise PetitionError(f"{self.path}: not a decisions file ({exc})") from None

    def _create(self, connection):
        """Create the table and switch to WAL, once: two processes creating the file at the
        same moment take turns on a lock file, since SQLite answers a journal-mode change with
        "database is locked" at once instead of waiting."""
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if connection.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
                return  # the other process made it meanwhile
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute(CREATE)
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    def _rows(self, connection, where="", parameters=()):
        if connection is None:
            return []
        try:
            cursor = connection.execute(f"SELECT {', '.join(COLUMNS)} FROM decisions {where} "
                                        f"ORDER BY {schema.DECISION_ID}", parameters)
        except sqlite3.OperationalError as exc:  # version 0: a file without the table
            if "no such table" in str(exc):
                return []
            raise PetitionError(f"{self.path}: cannot read the decisions ({exc})") from None
        return [Decision(*row) for row in cursor]

    def rows(self):
        """Every decision, in the order written."""
        connection = self._connect(create=False)
        try:
            return self._rows(connection)
        finally:
            if connection is not None:
                connection.close()

    def effective(self):
        """The decisions in force (an empty ``Effective`` when there is no file yet)."""
        return resolve(self.rows())[0]

    def list(self, limit=None):
        """The last ``limit`` decisions (all by default), oldest first, each with its status."""
        rows = self.rows()
        statuses = resolve(rows)[1]
        shown = rows[-limit:] if limit else rows
        return [dataclasses.replace(row, status=statuses[row.id]) for row in shown]

    def add(self, kind, letter_a=None, letter_b=None, *, value=None, undoes=None, user=None, note="", at=None):
        """Append one decision and return it.

        Parameters
        ----------
        kind : str
            ``same`` or ``different`` (``letter_a``, ``letter_b``: two distinct letters),
            ``detach`` (``letter_a``), ``topic`` (``letter_a`` and ``value``: codes, "|"-joined
            or a list) or ``undo`` (``undoes``: the id of a decision in force).
        user : str, optional
            Who decided (default: the login name).
        note : str
            The analyst's reason, shown by ``list``.
        at : datetime, optional
            When (default: now, local time with its offset).
        """
        row = self._checked(kind, letter_a, letter_b, value, undoes)
        user = letter_id(user if user is not None else getpass.getuser(), "user")
        at = (at or dt.datetime.now().astimezone()).isoformat(timespec="seconds")
        connection = self._connect(create=True)
        try:
            connection.execute("BEGIN IMMEDIATE")  # the undo check and the insert see one state
            try:
                if kind == schema.DECISION_UNDO:
                    self._check_undo(connection, row[schema.DECISION_UNDOES])
                cursor = connection.execute(
                    f"INSERT INTO decisions ({', '.join(COLUMNS[1:])}) VALUES ({', '.join('?' * (len(COLUMNS) - 1))})",
                    (kind, row[schema.LETTER_A], row[schema.LETTER_B], row[schema.VALUE], user, at, note or "",
                     row[schema.DECISION_UNDOES]))
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            return Decision(cursor.lastrowid, kind, row[schema.LETTER_A], row[schema.LETTER_B], row[schema.VALUE],
                            user, at, note or "", row[schema.DECISION_UNDOES])
        except sqlite3.OperationalError as exc:  # "database is locked" after the timeout, a read-only file
            raise PetitionError(f"{self.path}: cannot write the decision ({exc})") from None
        finally:
            connection.close()

    @staticmethod
    def _checked(kind, letter_a, letter_b, value, undoes):
        """The row's letter_a, letter_b, value and undoes for ``kind``, checked."""
        row = {schema.LETTER_A: None, schema.LETTER_B: None, schema.VALUE: None, schema.DECISION_UNDOES: None}
        if kind in PAIR_KINDS:
            row[schema.LETTER_A], row[schema.LETTER_B] = letter_id(letter_a), letter_id(letter_b)
            if row[schema.LETTER_A] == row[schema.LETTER_B]:
                raise PetitionError(f"`{kind}` needs two different letters, got {row[schema.LETTER_A]} twice")
        elif kind in LETTER_KINDS:
            row[schema.LETTER_A] = letter_id(letter_a)
            if kind == schema.DECISION_TOPIC:
                row[schema.VALUE] = "|".join(topic_codes(value))
        elif kind == schema.DECISION_UNDO:
            if isinstance(undoes, bool) or not isinstance(undoes, int) or undoes < 1:
                raise PetitionError(f"undo needs a decision number (1 or more), got {undoes!r}")
            row[schema.DECISION_UNDOES] = undoes
        else:
            raise PetitionError(f"unknown decision kind {kind!r}: expected one of {', '.join(schema.DECISION_KINDS)}")
        return row

    def _check_undo(self, connection, target):
        rows = self._rows(connection)
        if target not in {row.id for row in rows}:
            raise PetitionError(f"there is no decision {target} in {self.path}")
        status = resolve(rows)[1][target]
        if status.startswith("undone"):
            raise PetitionError(f"decision {target} is already {status}")


def format_table(decisions):
    """``decisions`` as an aligned text table, one line each."""
    header = ("#", "decision", "user", "at", "status", "note")
    lines = [(str(d.id), d.describe(), d.user, d.at, d.status, d.note) for d in decisions]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header) - 1)]
    return "\n".join("  ".join([*(cell.ljust(width) for cell, width in zip(line, widths)), line[-1]]).rstrip()
                     for line in [header, *lines])


def decide_command(store, action, *, letters=(), value=None, undoes=None, note="", user=None, as_json=False,
                   limit=None, topic_code=None):
    """``petition decide ACTION``: write one decision and print it, or print the list.

    ``topic_code`` maps a topic as typed (code or Chinese name) onto its code, or None when it
    is not a topic."""
    if action == "list":
        decisions = store.list(limit)
        if as_json:
            print(json.dumps([d.as_dict() for d in decisions], ensure_ascii=False, indent=1))
        elif decisions:
            print(format_table(decisions))
        else:
            print(f"no decisions in {store.path}")
        return decisions
    if action == schema.DECISION_TOPIC and topic_code is not None:
        unknown = [code for code in topic_codes(value) if topic_code(code) is None]
        if unknown:
            raise PetitionError(f"not a topic of the taxonomy: {', '.join(unknown)}")
        value = [topic_code(code) for code in topic_codes(value)]
    before = set(store.effective().conflicts())
    decision = store.add(action, *letters, value=value, undoes=undoes, user=user, note=note)
    print(f"decision {decision.id}: {decision.describe()} by {decision.user}")
    for a, b in store.effective().conflicts():
        if (a, b) in before:
            continue
        print(f"warning: {a} ≠ {b} is decided, but `same` decisions join them through other letters; "
              f"undo one of them")
    return decision
