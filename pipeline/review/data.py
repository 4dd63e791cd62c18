"""What the workbench reads: a nightly home's runs, letters, cases, links and decisions.

Every page asks :class:`Workbench` (one per app) for a :class:`Snapshot`: the letters of the
latest run and of the archive (``letters.load_letters``), the cases of every run's
``cases.csv`` (a case as the latest run listing it has it), the links of every run's
``links.csv`` and each letter's township (``reporting.places``). A snapshot is rebuilt when one
of those files changes (a nightly, a dedupe run again), so pages show the home as it is.
Decisions are read from the store at every request: what an analyst decided shows at once.

No raw identifier column leaves this module: letters keep their ``petitioner_key`` pseudonym
and their ``clean_text`` (identifiers and names masked by normalize).
"""
import dataclasses
import json
import re
from pathlib import Path

import pandas as pd

from pipeline import schema
from pipeline.classifier.taxonomy import Taxonomy
from pipeline.decisions import DecisionStore, pair
from pipeline.errors import PetitionError
from pipeline.letters import load_letters, topic_names
from pipeline.reporting.places import dictionary_townships, find_townships
from pipeline.rundir import RunDir

RUN_LETTERS = "deduped.parquet"
CASES_FILE, SUMMARY_FILE = "cases.csv", "summary.json"
INDEX_MANIFEST, INDEX_LINKS = "index/manifest.json", "links.parquet"
# pairs dedupe scored but did not link: shown on case pages, since they build its cases
SHOWN_PAIRS = (*schema.RELATIONS, schema.POSSIBLE)
TOWNSHIP = "_township"
TITLE = "_title"
BODY = "_body"
IN_RUN = "_in_run"
REOPENED = "reopened"   # a case column issue 16 adds (回流); shown when present
HIDDEN = (*schema.PETITIONER_COLUMNS, schema.ORIGINAL_TEXT, schema.TITLE, schema.CONTENT, schema.EXTRA,
          schema.TOKENS, schema.MASKED_NAMES)
LIST_LIMIT = 200


def run_dirs(home):
    """Run directories of ``home`` that dedupe finished (their ``deduped.parquet``), oldest first:
    by name (date and dump hash), then by when dedupe wrote them."""
    files = [p for p in Path(home).glob(f"*/{RUN_LETTERS}") if not p.parent.name.startswith(".")]
    return [p.parent for p in sorted(files, key=lambda p: (p.parent.name[:10], p.stat().st_mtime))]


def index_links(home):
    """Every pair the dedupe index of ``home`` holds (its shards' ``links.parquet``, in the
    manifest's order; a pair scored again later as it was last): links, possible pairs and the
    pairs scored within cases, with their evidence (names already masked)."""
    manifest = Path(home) / INDEX_MANIFEST
    if not manifest.exists():
        return pd.DataFrame(columns=list(schema.LINK_COLUMNS))
    shards = json.loads(manifest.read_text(encoding="utf-8")).get("shards", [])
    frames = [pd.read_parquet(manifest.parent / shard["name"] / INDEX_LINKS) for shard in shards]
    if not frames:
        return pd.DataFrame(columns=list(schema.LINK_COLUMNS))
    links = pd.concat(frames, ignore_index=True)
    return links.drop_duplicates([schema.LETTER_A, schema.LETTER_B], keep="last").reset_index(drop=True)


def read_people_csv(path):
    """A CSV the pipeline wrote for people (``rundir.write_csv``), every value a string."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def _split(value):
    return [part for part in str(value).split("|") if part]


@dataclasses.dataclass
class Snapshot:
    """The home as its files are now.

    Attributes
    ----------
    run : Path
        The latest run directory.
    summary : dict
        Its ``summary.json``.
    letters : DataFrame
        Every letter (run and archive), indexed by ``letter_id``, without raw identifiers; with
        ``_title``, ``_body`` (the clean text's two parts), ``_township`` and ``_in_run``.
    cases : DataFrame
        ``cases.csv`` rows of every run (the latest listing of each case), indexed by ``case_id``,
        with ``_townships`` ("|"-joined) and ``letters`` as an int.
    case_of : Series
        {letter id: case id} from those rows.
    links : DataFrame
        ``index_links``: every pair dedupe scored, each once.
    """
    run: Path
    summary: dict
    letters: pd.DataFrame
    cases: pd.DataFrame
    case_of: pd.Series
    links: pd.DataFrame
    shared_names: dict = dataclasses.field(default_factory=dict)

    def case_letters(self, case_id):
        """The letters of case ``case_id`` (oldest first); KeyError when there is no such case."""
        ids = [i for i in _split(self.cases.loc[case_id, schema.CASE_LETTER_IDS]) if i in self.letters.index]
        return self.letters.loc[ids].sort_values(schema.RECEIVED_AT, kind="stable")

    def links_of(self, letter_ids):
        """Links and possible pairs touching any of ``letter_ids``, highest score first, and how many
        other pairs were scored within their cases (not listed: a large case has hundreds)."""
        ids = set(letter_ids)
        touching = self.links[self.links[schema.LETTER_A].isin(ids) | self.links[schema.LETTER_B].isin(ids)]
        shown = touching[schema.RELATION].isin(SHOWN_PAIRS)
        return touching[shown].sort_values(schema.LINK_SCORE, ascending=False, kind="stable"), int((~shown).sum())


class Workbench:
    """Data access for the review app over the nightly home ``home``.

    Parameters
    ----------
    home : str or Path
        The home (``petition nightly --home``): runs, ``index/``, ``archive/``, ``decisions.sqlite``.
    config : Config
        ``report`` settings (townships) and ``classify.taxonomy`` (topic names).
    """

    def __init__(self, home, config):
        self.home, self.config = Path(home), config
        self.store = DecisionStore.for_home(self.home)
        self.topic_names = topic_names(config.classify.taxonomy)
        taxonomy = Path(config.classify.taxonomy)
        self._taxonomy = Taxonomy.load(taxonomy) if taxonomy.exists() else None
        self._snapshot, self._stamp, self._keys = None, None, None

    def _files(self):
        runs = run_dirs(self.home)
        if not runs:
            raise PetitionError(f"{self.home}: no finished run (deduped.parquet); run `petition nightly "
                                f"DUMP --home {self.home}` (or `make nightly`) first")
        archive = self.home / "archive" / "letters"
        files = [runs[-1] / RUN_LETTERS, runs[-1] / SUMMARY_FILE, *sorted(archive.glob("*.parquet"))]
        files += [run / CASES_FILE for run in runs] + [self.home / INDEX_MANIFEST]
        return runs, [f for f in files if f.exists()]

    def snapshot(self):
        """The current :class:`Snapshot` (rebuilt only when a file it reads has changed)."""
        runs, files = self._files()
        stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
        if stamp != self._stamp:
            self._snapshot, self._stamp = self._load(runs), stamp
        return self._snapshot

    def _load(self, runs):
        run = runs[-1]
        letters, _ = load_letters(RunDir(run))
        run_ids = set(pd.read_parquet(run / RUN_LETTERS, columns=[schema.LETTER_ID])[schema.LETTER_ID].astype(str))
        parts = letters[schema.CLEAN_TEXT].str.split("\n", n=1, expand=True).reindex(columns=[0, 1]).fillna("")
        letters[TITLE], letters[BODY] = parts[0], parts[1]
        letters[IN_RUN] = letters[schema.LETTER_ID].isin(run_ids)
        known = dictionary_townships(self.config.segment.extra_dicts, self.config.report.township_suffixes,
                                     self.config.report.township_false_endings)
        letters[TOWNSHIP] = find_townships(letters, self.config.report, known)[0]
        letters = letters.drop(columns=[c for c in HIDDEN if c in letters.columns])
        letters = letters.set_index(schema.LETTER_ID, drop=False)
        cases = pd.concat([read_people_csv(r / CASES_FILE) for r in runs if (r / CASES_FILE).exists()],
                          ignore_index=True)
        cases = cases.drop_duplicates(schema.CASE_ID, keep="last")
        members = cases[[schema.CASE_ID, schema.CASE_LETTER_IDS]].assign(
            **{schema.LETTER_ID: cases[schema.CASE_LETTER_IDS].map(_split)}).explode(schema.LETTER_ID)
        # a letter a later run put in another case leaves the earlier listing
        case_of = members.drop_duplicates(schema.LETTER_ID, keep="last").set_index(schema.LETTER_ID)[schema.CASE_ID]
        cases = cases.set_index(schema.CASE_ID, drop=False)
        cases[schema.CASE_LETTERS] = pd.to_numeric(cases[schema.CASE_LETTERS], errors="coerce").fillna(0).astype(int)
        towns = letters[TOWNSHIP].reindex(case_of.index).groupby(case_of.values).agg(
            lambda s: "|".join(sorted(set(s.dropna()))))
        cases["_townships"] = towns.reindex(cases.index).fillna("")
        links = index_links(self.home)
        summary = json.loads((run / SUMMARY_FILE).read_text(encoding="utf-8")) if (run / SUMMARY_FILE).exists() else {}
        return Snapshot(run, summary, letters, cases, case_of, links)

    # --- queries the pages make -------------------------------------------------------------

    def tonight(self):
        """The latest run's counts: letters, unique matters, new and continuing cases, needing review."""
        snap = self.snapshot()
        run_letters = snap.letters[snap.letters[IN_RUN]]
        tonight = snap.cases[snap.cases.index.isin(snap.case_of[snap.case_of.index.isin(run_letters.index)])]
        return {"run": snap.run.name, "letters": len(run_letters),
                "matters": int(run_letters[schema.CASE_ID].nunique()),
                "new": int((tonight[schema.CASE_STATUS] == schema.CASE_NEW).sum()),
                "continues": int((tonight[schema.CASE_STATUS] == schema.CASE_CONTINUES).sum()),
                "review": len(self.review_queue(limit=None))}

    def find_cases(self, *, q="", status="", topic="", township="", date_from="", date_to="", min_letters=0,
                   tonight=False, limit=LIST_LIMIT):
        """(cases matching every filter, largest first, at most ``limit``; how many matched)."""
        snap = self.snapshot()
        cases = snap.cases
        keep = pd.Series(True, index=cases.index)
        if tonight:  # cases holding a letter of the latest run
            keep &= cases.index.isin(snap.case_of[snap.case_of.index.isin(snap.letters.index[snap.letters[IN_RUN]])])
        if status:
            keep &= cases[schema.CASE_STATUS] == status
        if topic:
            keep &= cases[schema.CASE_TOPICS].map(lambda v: topic in _split(v))
        if township:
            keep &= cases["_townships"].map(lambda v: township in _split(v))
        if date_from:
            keep &= cases[schema.CASE_LAST_DATE] >= date_from
        if date_to:
            keep &= (cases[schema.CASE_FIRST_DATE] <= date_to) & (cases[schema.CASE_FIRST_DATE] != "")
        if min_letters:
            keep &= cases[schema.CASE_LETTERS] >= min_letters
        if q:
            texts = snap.letters[schema.CLEAN_TEXT]
            hit = set(snap.case_of.reindex(texts.index[texts.str.contains(q, regex=False)]).dropna())
            keep &= cases[schema.CASE_LABEL].str.contains(q, regex=False) | cases.index.isin(hit) | (cases.index == q)
        found = cases[keep].sort_values([schema.CASE_LETTERS, schema.CASE_LAST_DATE], ascending=False, kind="stable")
        return found.head(limit), len(found)

    def find_letters(self, *, q="", topic="", township="", addressee="", date_from="", date_to="", tonight=False,
                     limit=LIST_LIMIT):
        """(letters matching every filter, newest first, at most ``limit``; how many matched)."""
        letters = self.snapshot().letters
        keep = pd.Series(True, index=letters.index)
        if tonight:
            keep &= letters[IN_RUN]
        if q:
            keep &= letters[schema.CLEAN_TEXT].str.contains(q, regex=False) | (letters.index == q)
        if topic:
            keep &= letters[schema.TOPIC_LIST].map(lambda topics: topic in topics)
        if township:
            keep &= letters[TOWNSHIP] == township
        if addressee:
            keep &= letters[schema.ADDRESSEE].str.contains(addressee, regex=False)
        dates = letters[schema.RECEIVED_AT]
        if date_from:
            keep &= dates >= pd.Timestamp(date_from)
        if date_to:
            keep &= dates < pd.Timestamp(date_to) + pd.Timedelta(days=1)
        found = letters[keep].sort_values(schema.RECEIVED_AT, ascending=False, kind="stable")
        return found.head(limit), len(found)

    def review_queue(self, limit=LIST_LIMIT):
        """Letters of the latest run needing review whose topics no decision has settled,
        least confident first."""
        letters = self.snapshot().letters
        decided = set(self.store.effective().topics)
        waiting = letters[letters[IN_RUN] & letters[schema.NEEDS_REVIEW] & ~letters.index.isin(decided)]
        waiting = waiting.sort_values(schema.TOPIC_CONFIDENCE, kind="stable")
        return waiting if limit is None else waiting.head(limit)

    def townships(self):
        """Township names found, most letters first (for the filters)."""
        counts = self.snapshot().letters[TOWNSHIP].value_counts()
        return [t for t in counts.index if t]

    def person_keys(self, *, name="", address="", id_number="", phone=""):
        """{basis: pseudonym} of each identifier typed, derived as normalize derives it (with the
        office's key, ``normalize.PetitionerKeys``) from a register row holding only that
        identifier: an ID number, a phone number, a name with an address."""
        if self._keys is None:
            from pipeline.normalize import PetitionerKeys, TextCleaner, load_key  # jieba's tables: on first use
            self._keys = PetitionerKeys(load_key(create=False), TextCleaner.from_config(self.config),
                                        self.config.normalize.anonymous_names)
        typed = {"id": {"id_number": id_number}, "phone": {"phone": phone},
                 "name_address": {"name": name, "address": address}}
        found = {}
        for basis, fields in typed.items():
            if all(value.strip() for value in fields.values()):
                key, used = self._keys.key_for(**fields)
                if key and used == basis:
                    found[basis] = key
        return found

    def person_letters(self, keys):
        """Letters whose ``petitioner_key`` is one of ``keys``, oldest first."""
        letters = self.snapshot().letters
        keys = {k for k in keys if k}
        return letters[letters[schema.PETITIONER_KEY].isin(keys)].sort_values(schema.RECEIVED_AT, kind="stable")

    def warm(self):
        """Read the home and load dedupe's name extractor (jieba's tables, seconds) before the first
        page asks for them; returns self."""
        from pipeline.explore import names_in
        self.snapshot()
        names_in("")
        return self

    def case_shared_names(self, case_id, texts):
        """Names at least two of the case's letters share (dedupe's extractor), cached per case and text."""
        from pipeline.explore import shared_names  # loads jieba's tables once, on the first case page
        snap = self.snapshot()
        key = (case_id, hash(tuple(texts)))
        if key not in snap.shared_names:
            snap.shared_names[key] = shared_names(texts) if len(texts) > 1 else []
        return snap.shared_names[key]

    def decisions_about(self, letter_ids):
        """Decisions in force or not (``DecisionStore.list``) naming any of ``letter_ids``, newest first."""
        ids = set(letter_ids)
        return [d for d in reversed(self.store.list()) if d.letter_a in ids or d.letter_b in ids]

    def names_topic(self, topic):
        """Whether the taxonomy names ``topic``: one of its labels (paths) or codes, which a model
        trained on codes answers in (and ``petition train`` maps onto the labels)."""
        return bool(self._taxonomy and self._taxonomy.code_for(topic))

    def decided_state(self):
        """The decisions in force (``decisions.Effective``)."""
        return self.store.effective()

    def link_rows(self, links, effective=None):
        """``links`` as dicts for a page, each with ``decided_different`` from the decisions in force."""
        effective = effective or self.decided_state()
        rows = links.to_dict("records")
        for row in rows:
            row[schema.SAME_PETITIONER] = str(row[schema.SAME_PETITIONER]).lower() == "true"
            row["decided_different"] = pair(row[schema.LETTER_A], row[schema.LETTER_B]) in effective.cannot_link
            row["decided_same"] = pair(row[schema.LETTER_A], row[schema.LETTER_B]) in effective.must_link
        return rows


def highlight_segments(text, names):
    """``text`` cut into (piece, marked) pairs, ``marked`` where one of ``names`` occurs (longest
    first): the template escapes the pieces and wraps the marked ones."""
    if not names:
        return [(text, False)]
    pattern = re.compile("|".join(map(re.escape, sorted(names, key=len, reverse=True))))
    out, last = [], 0
    for match in pattern.finditer(text):
        out += [(text[last:match.start()], False), (match.group(0), True)]
        last = match.end()
    out.append((text[last:], False))
    return [piece for piece in out if piece[0]]


def top3(value):
    """The ``top3`` JSON ([[code, probability], ...]) as a list of (code, probability)."""
    try:
        return [(str(code), float(p)) for code, p in json.loads(value or "[]")][:3]
    except (ValueError, TypeError):
        return []
