"""Cases, the last step of dedupe: letters grouped into cases (纯件) by their links.

Cases are groups of average linkage over the links' P(same matter) (``pipeline.dedup.clustering``:
a letter joins a case when it matches the case's letters on average, not through a chain), as
the analysts' decisions in force allow (``same`` joins, ``different`` keeps apart even through a
chain, ``detach`` cuts a letter's links: :func:`assign_cases`); a case's id is the id of its earliest
letter (date, then id), so it stays put as letters are added, and N nightly runs give the ids
one run over everything gives.

A case also gets a short label (:meth:`Labeler.labels`) that people can read beside its id.
"""
import dataclasses
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import schema
from pipeline.dedup.arrays import arrow_strings, run_bounds
from pipeline.dedup.clustering import average_linkage, link_components
from pipeline.dedup.index import link_ends
from pipeline.lookup import is_in
from pipeline.parallel import map_chunks
from pipeline.privacy import mask_identifiers

# working columns, never written
DAY, ID, IN_RUN, BEFORE, CASE, VALUE = "day", "id", "in_run", "before", "case", "value"
ELLIPSIS = "…"
_NOT_A_LABEL_NAME = re.compile(r"[\d≈某×*＊Xx]")   # dates, amounts, numbers, masked people
_CJK_NAME = re.compile(r"[\u3400-\u9fff]{2,4}")
ADDRESS_MASK = "〔住址〕"
_ADDRESS_AFTER_CUE = re.compile(r"((?:家住|住在|现住|居住在|住址|地址)[:：]?\s*)([^\s,，。;；:：!！?？]{4,60})")
_HOUSE = re.compile(r"[0-9号室栋组]")   # a house, room or village group: an address that finds someone


def shorten(text, max_chars):
    """``text`` on one line, at most ``max_chars`` characters (cut with …)."""
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= max_chars else text[:max_chars - 1] + ELLIPSIS


class Labeler:
    """Masks text for people and names cases.

    Parameters
    ----------
    max_chars : int
        Longest label (``report.case_label_chars``).
    name_pattern : str
        What a specific name must match to label a case without a title
        (``report.case_label_names``: places and organisations).
    masker : privacy.NameMasker, optional
        Masks names written after cue words (我叫张三 → 我叫张某).
    anonymous : iterable of str
        Registered names that stand for no one (匿名, 群众): left as they are.
    """

    def __init__(self, max_chars, name_pattern, masker=None, anonymous=()):
        self.max_chars, self.name_pattern, self.masker = max_chars, re.compile(name_pattern), masker
        self.anonymous = frozenset(anonymous)

    @classmethod
    def from_config(cls, config):
        from pipeline.privacy import NameMasker
        return cls(config.report.case_label_chars, config.report.case_label_names, NameMasker.from_config(config),
                   config.normalize.anonymous_names)

    def mask(self, text, names=(), everyone=frozenset()):
        """``text`` with identifiers masked (``privacy.mask_identifiers``), names after cue
        words masked, each raw name of ``names`` (the letter's own, 2+ characters) and any
        name of ``everyone`` (other registered names, 3+ characters) replaced by surname + 某."""
        text = mask_identifiers(text if isinstance(text, str) else "")
        if self.masker is not None:
            text = self.masker.mask(text)
        found = {text[i:i + n] for n in (3, 4) for i in range(len(text) - n + 1)} & everyone if everyone else set()
        own = {n.strip() for n in names if isinstance(n, str) and _CJK_NAME.fullmatch(n.strip())} - self.anonymous
        for name in sorted(own | found, key=len, reverse=True):
            if "某" not in name:
                text = text.replace(name, name[0] + "某")
        return text

    def excerpt(self, text, names=(), everyone=frozenset(), max_chars=40, addresses=()):
        """The start of ``text``, at most ``max_chars`` characters, masked: the registered
        ``addresses`` and an address after 家住/住址 (:func:`mask_addresses`), then :meth:`mask`."""
        text = text[:10 * max_chars] if isinstance(text, str) else ""
        return shorten(self.mask(mask_addresses(text, addresses), names, everyone), max_chars)

    def _names(self, values):
        """The specific names most letters of the case hold, that look like a place or an
        organisation (``name_pattern``), "、"-joined."""
        counts = {}
        for joined in values:
            for name in dict.fromkeys(joined.split("|")) if isinstance(joined, str) else ():
                if len(name) >= 3 and not _NOT_A_LABEL_NAME.search(name) and self.name_pattern.search(name):
                    counts[name] = counts.get(name, 0) + 1
        return shorten("、".join(sorted(counts, key=lambda n: -counts[n])[:3]), self.max_chars)

    def labels(self, letters, everyone=frozenset(), processes=1):
        """{case id: label} of the cases of ``letters`` (every letter of each case).

        ``letters`` has ``case_id``, ``received_at``, ``letter_id`` and, when known, ``title``,
        ``petitioner_name`` (registered names, masked in the label), ``places`` and ``others``
        (the dedupe index's specific names). A case's label is the title of its earliest letter
        that has one, masked (:meth:`mask`), at most ``max_chars`` characters; else the names
        most of its letters share that match ``name_pattern`` (never a person); else ''.
        The titles are masked in ``processes`` forked workers.
        """
        frame = letters.sort_values([schema.CASE_ID, schema.RECEIVED_AT, schema.LETTER_ID], na_position="last")
        empty = pd.Series("", index=frame.index)
        titles, names = frame.get(schema.TITLE, empty), frame.get(schema.PETITIONER_NAME, empty)
        found = frame.get(schema.PLACES, empty).fillna("") + "|" + frame.get(schema.OTHERS, empty).fillna("")
        # plain lists: a million cases' rows taken with .iloc cost minutes
        titles, names, found = titles.tolist(), names.tolist(), found.tolist()
        titled, labels = {}, {}  # case id -> (its first title, its letters' names), for masking
        for case_id, rows in frame.groupby(schema.CASE_ID, sort=False).indices.items():
            rows = rows.tolist()
            first = next((titles[i] for i in rows if isinstance(titles[i], str) and titles[i].strip()), None)
            labels[case_id] = self._names([found[i] for i in rows]) if first is None else ""  # in case order
            if first is not None:
                titled[case_id] = (first, [names[i] for i in rows])
        masked = map_chunks(lambda chunk: [shorten(self.mask(title, case_names, everyone), self.max_chars)
                                           for title, case_names in chunk], list(titled.values()), processes)
        labels.update(zip(titled, masked))
        return labels


def mask_addresses(text, addresses=()):
    """``text`` with each registered address of ``addresses`` (and each tail of it from after a
    省/市/县/区 on, 4+ characters) and any address after 家住/住址/住在 … that reaches a house,
    room or village group replaced by ``ADDRESS_MASK``."""
    parts = set()
    for address in (a.strip() for a in addresses if isinstance(a, str)):
        cuts = [0] + [m.end() for m in re.finditer("[省市县区]", address)]
        parts.update(address[cut:] for cut in cuts if len(address) - cut >= 4)
    for part in sorted(parts, key=len, reverse=True):
        text = text.replace(part, ADDRESS_MASK)
    return _ADDRESS_AFTER_CUE.sub(lambda m: m.group(1) + ADDRESS_MASK if _HOUSE.search(m.group(2)) else m.group(0),
                                  text)


def raw_names(names, min_chars=3):
    """The registered names of ``names`` that identify someone (``min_chars``+ Chinese
    characters, not masked): those looked for in any text."""
    values = pd.Series(names, dtype=object).dropna().astype(str).str.strip().unique()
    return frozenset(n for n in values if len(n) >= min_chars and re.fullmatch(r"[\u3400-\u9fff]+", n) and "某" not in n)


def assign_cases(letters, links, decisions=None, threshold=0.35, max_letters=200, reach=None, ends=None):
    """Cases of ``letters`` (every indexed letter) from ``links`` (every link, and the other
    pairs the index keeps: ``POSSIBLE``, ``IN_CASE``) and the analyst ``decisions`` in force (a
    ``decisions.Effective``, or None: the links alone).

    A case is a group of average linkage over the pairs' scores (P(same matter):
    ``clustering.average_linkage``): letters stay together only while the mean score over
    all their pairs is at least ``threshold``, so a chain of links does not make a case by
    itself. Inside a component of the links and possible pairs of at most ``max_letters``
    letters every pair has been scored; in a larger one, a pair not scored counts 0. The
    decisions:

    - a detached letter's links are not followed: it is a case of its own unless a ``same``
      decision joins it to others;
    - ``same`` pairs start in one case; a ``different`` pair never ends in one case, not even
      through other letters (a ``different`` wins over ``same`` decisions that contradict it).
      The links stay links (links.csv is evidence); only the cases change;
    - decisions naming a letter not indexed yet wait for it.

    Returns a DataFrame indexed like ``letters`` with ``case_id``, ``duplicate_of`` (the
    earliest letter of its case it is linked to; else joined to by a ``same`` decision, with
    relation ``decided_same``; else the earliest it was scored with, as ``same_matter``: the
    case's mean joined them; '' for the case's first letter) and ``relation``. Ids are matched and sorted with arrow (millions of links: no Python string
    per link); the case ids depend only on the letters, links and decisions, not on the order
    of the nightly runs that indexed them.

    ``reach`` (a boolean mask over ``letters``, e.g. a night's letters): only the cases of these
    letters are wanted. Only the parts of the clustering that hold them, or a decided letter,
    are clustered (``average_linkage(..., reach=...)``), giving them the cases clustering every
    letter gives; the letters of the other parts get '' in every column.
    """
    ids = arrow_strings(letters[schema.LETTER_ID])
    days = pd.to_datetime(letters[schema.RECEIVED_AT]).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    days = np.where(pd.isna(letters[schema.RECEIVED_AT]).to_numpy(), np.iinfo(np.int64).max, days)
    order = pc.sort_indices(pa.table({DAY: days, ID: ids}),
                            sort_keys=[(DAY, "ascending"), (ID, "ascending")]).to_numpy()
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))

    a, b = ends or link_ends(links, ids)
    decided = Decided.of(decisions, ids)
    followed = ~(decided.detached[a] | decided.detached[b]) if len(decided.detached) else np.ones(len(a), dtype=bool)
    must = decided.must
    scores = links[schema.LINK_SCORE].to_numpy(dtype=float) if len(links) else np.zeros(0)
    relations = links[schema.RELATION] if len(links) else pd.Series([], dtype=str)
    linked = relations.isin(schema.RELATIONS).to_numpy()
    listed = (relations != schema.IN_CASE).to_numpy()
    # pairs scored inside cases count while their component is small enough to have them all
    # scored (``scoring.within_pairs``): the same pairs whatever the order of nights
    component, size = link_components(len(ids), a[listed], b[listed])
    weighed = followed & (listed | (size[component[a]] <= max_letters))
    # one text is one letter: exact copies, and one letter sent to several bodies (一信多投),
    # are one case, as decided pairs are, unless a different decision keeps them apart
    copies = followed & relations.isin([schema.EXACT_COPY, schema.MULTI_ADDRESSED]).to_numpy()
    joined = np.concatenate((must, np.column_stack((a[copies], b[copies]))))
    # the decided letters and the copies joined to them are clustered whatever the reach
    seeds = None if reach is None else np.asarray(reach, dtype=bool) | decided.named(len(ids))
    if seeds is not None and len(joined):
        seeds[joined[seeds[joined[:, 0]] | seeds[joined[:, 1]]].ravel()] = True
    component = average_linkage(len(ids), a[weighed], b[weighed], scores[weighed], threshold, rank=rank,
                                must=joined, cannot=decided.cannot, reach=seeds)
    clustered = component >= 0
    chosen = np.flatnonzero(clustered)
    pairs = weighed & clustered[a] & clustered[b]
    first_rank = np.full(component.max() + 1 if len(chosen) else 0, np.iinfo(np.int64).max)
    np.minimum.at(first_rank, component[chosen], rank[chosen])
    first = np.full(len(ids), -1, dtype=np.int64)
    first[chosen] = order[first_rank[component[chosen]]]
    # every link inside a case seen from both ends, then the same decisions, then the other
    # scored pairs (the case's mean made the letter one matter with them); keep each letter's
    # earliest neighbour, a link before a decision before a scored pair
    inside = pairs & (component[a] == component[b])
    codes, names = pd.factorize(relations[inside].where(linked[inside], schema.SAME_MATTER))
    names = np.append(np.asarray(names, dtype=object), schema.DECIDED_SAME)
    must = must[(component[must[:, 0]] == component[must[:, 1]]) & (component[must[:, 0]] >= 0)]
    tier = np.concatenate((np.where(linked[inside], 0, 2), np.ones(len(must), dtype=np.int64)))
    a, b, same = a[inside], b[inside], np.full(len(must), len(names) - 1)
    me = np.concatenate((a, must[:, 0], b, must[:, 1]))
    other = np.concatenate((b, must[:, 1], a, must[:, 0]))
    relation = np.concatenate((codes, same, codes, same))
    tier = np.concatenate((tier, tier))
    del a, b
    pick = np.lexsort((rank[other], tier, me))
    me, other, relation = me[pick], other[pick], relation[pick]
    head = np.flatnonzero(np.concatenate(([True], me[1:] != me[:-1]))) if len(me) else me
    duplicate_of = np.full(len(ids), -1, dtype=np.int64)
    kind = np.full(len(ids), "", dtype=object)
    duplicate_of[me[head]], kind[me[head]] = other[head], names[relation[head]]
    is_first = first == np.arange(len(ids))
    duplicate_of[is_first], kind[is_first] = -1, ""
    duplicate_ids = pc.if_else(pa.array(duplicate_of >= 0), ids.take(np.maximum(duplicate_of, 0)), "")
    case_ids = pc.if_else(pa.array(clustered), ids.take(np.maximum(first, 0)), "")
    return pd.DataFrame({schema.CASE_ID: pd.array(case_ids, dtype="str"),
                         schema.DUPLICATE_OF: pd.array(duplicate_ids, dtype="str"),
                         schema.RELATION: pd.array(kind, dtype="str")}, index=letters.index)


@dataclasses.dataclass(frozen=True)
class Decided:
    """The decisions in force about indexed letters, as positions in the letters.

    ``must``, ``cannot``: (k, 2) int64 arrays of ``same`` / ``different`` pairs, in the order
    of their letter ids; ``detached``: a boolean mask over the letters (empty: none);
    ``waiting``: how many decisions name a letter not indexed yet (left out until it is).
    """
    must: np.ndarray
    cannot: np.ndarray
    detached: np.ndarray
    waiting: int = 0

    @classmethod
    def of(cls, decisions, ids):
        """``decisions`` (an ``Effective`` or None) located in ``ids`` (arrow strings)."""
        none = np.zeros((0, 2), dtype=np.int64)
        if decisions is None:
            return cls(none, none, np.zeros(0, dtype=bool))

        def locate(values):
            found = pc.index_in(pa.array(values, type=pa.large_string()), value_set=ids)
            return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        pairs, waiting = {}, 0
        for name, chosen in (("must", decisions.must_link), ("cannot", decisions.cannot_link)):
            flat = locate([letter for pair in sorted(chosen) for letter in pair]).reshape(-1, 2)
            known = (flat >= 0).all(axis=1)
            pairs[name], waiting = flat[known], waiting + int((~known).sum())
        detached = np.zeros(len(ids), dtype=bool)
        located = locate(sorted(decisions.detached))
        detached[located[located >= 0]] = True
        waiting += int((located < 0).sum())
        return cls(pairs["must"], pairs["cannot"], detached if detached.any() else np.zeros(0, dtype=bool), waiting)

    def named(self, n):
        """A boolean mask over ``n`` letters: those a decision in force names."""
        mask = np.zeros(n, dtype=bool)
        mask[self.must.ravel()] = mask[self.cannot.ravel()] = True
        if len(self.detached):
            mask |= self.detached
        return mask


SAME_NOT_APPLIED = "same not applied: contradicted by a different decision"  # a summary key dedupe warns on


def decision_counts(letters, links, cases, decisions, ends=None):
    """What the ``decisions`` in force did to the cases (``assign_cases(letters, links,
    decisions)``), for the summary: how many of each kind hold among indexed letters, how many
    ``same`` decisions could not be applied (a ``different`` decision contradicts them), how
    many wait for letters not indexed yet, and how many links join letters of different cases
    (kept apart by a decision or by the case threshold), among the links of a letter ``cases``
    gives a case (with ``assign_cases(..., reach=...)``: of the run's cases). ``ends``: as
    ``assign_cases`` takes them."""
    ids = arrow_strings(letters[schema.LETTER_ID])
    decided = Decided.of(decisions, ids)
    case = pd.factorize(cases[schema.CASE_ID])[0]
    known = (cases[schema.CASE_ID] != "").to_numpy()
    linked = links[schema.RELATION].isin(schema.RELATIONS).to_numpy() if len(links) else np.zeros(0, dtype=bool)
    a, b = (end[linked] for end in (ends or link_ends(links, ids)))
    joined = case[decided.must[:, 0]] == case[decided.must[:, 1]]
    return {"same (one matter)": len(decided.must),
            SAME_NOT_APPLIED: int((~joined).sum()),
            "different (not one matter)": len(decided.cannot),
            "detached letters": int(decided.detached.sum()),
            "waiting for a letter not indexed yet": decided.waiting,
            "links between letters of different cases": int(((case[a] != case[b]) & (known[a] | known[b])).sum())}


def reopened_letters(letters, cases, closed_at):
    """回流: True for each of ``letters`` whose case (``cases``, from ``assign_cases``) had
    earlier letters (received strictly before it) that were all closed before it arrived.

    ``closed_at`` (datetimes like ``letters``) is when each letter was known closed: its
    closing date, a time before every letter for one known closed without a date, NaT when it
    is not closed. A letter without a date is never reopened.
    """
    received = pd.to_datetime(letters[schema.RECEIVED_AT]).reset_index(drop=True)
    frame = pd.DataFrame({CASE: cases[schema.CASE_ID].to_numpy(), DAY: received,
                          # not closed: later than any arrival
                          VALUE: pd.to_datetime(pd.Series(closed_at).reset_index(drop=True)).fillna(pd.Timestamp.max)})
    frame = frame.sort_values([CASE, DAY], na_position="last", kind="stable")
    by_case = frame.groupby(CASE, sort=False)
    # the latest closing among the letters before each (same-day letters are not before one another)
    latest_before = by_case[VALUE].cummax().groupby(frame[CASE], sort=False).shift(1)
    same_day = [frame[CASE], frame[DAY]]
    latest_before = latest_before.groupby(same_day, sort=False, dropna=False).transform("first")
    earlier = by_case.cumcount().groupby(same_day, sort=False, dropna=False).transform("first")
    reopened = (earlier > 0) & frame[DAY].notna() & (latest_before < frame[DAY])
    return reopened.sort_index().to_numpy()


def joined_runs(keys, values):
    """``"|".join`` of ``values`` over each run of equal ``keys`` (two string Series of one
    length, each key's rows together): a Series of str indexed by the runs' keys, in order,
    joined in Arrow. pandas' ``agg("|".join)`` makes a Series of each group: it took the case
    table twice as long; joining Python lists held half a gigabyte more at a million letters."""
    bounds = run_bounds(keys)
    lists = pa.ListArray.from_arrays(pa.array(bounds, pa.int32()), arrow_strings(values))
    return pd.Series(pc.binary_join(lists, pa.scalar("|", pa.large_string())), index=keys.iloc[bounds[:-1]],
                     dtype="str")


def case_table(letters, cases, in_run, before_run, titles, labeler, reopened=None, processes=1):
    """One row per case that holds one of the run's letters.

    ``letters`` are every indexed letter, ``cases`` their ``assign_cases`` frame,
    ``in_run``/``before_run`` boolean arrays: the letter is in this run / was indexed before it.
    ``titles`` (``letter_id``, ``title``, ``petitioner_name`` of the run's letters, or None)
    feed each case's label (``labeler``: a :class:`Labeler`); letters indexed by earlier runs
    give their specific names only. A case one of whose run letters is ``reopened`` (bool
    array, :func:`reopened_letters`) has status ``reopened`` (回流). Labels are masked in
    ``processes`` forked workers.
    """
    columns = [c for c in (schema.PLACES, schema.OTHERS) if c in letters.columns]
    frame = letters[[schema.LETTER_ID, schema.RECEIVED_AT, schema.PETITIONER_KEY, schema.ADDRESSEE,
                     schema.TOPICS, *columns]].assign(**{schema.CASE_ID: cases[schema.CASE_ID].to_numpy(),
                                                         IN_RUN: in_run, BEFORE: before_run,
                                                         schema.REOPENED: False if reopened is None else reopened})
    touched = frame.loc[frame[IN_RUN], schema.CASE_ID].unique()
    frame = frame[is_in(frame[schema.CASE_ID], touched)]
    everyone = frozenset()
    if titles is not None:
        known = titles.drop_duplicates(schema.LETTER_ID).set_index(schema.LETTER_ID)
        ids = frame[schema.LETTER_ID].astype(str)
        frame = frame.assign(**{column: known[column].reindex(ids).fillna("").to_numpy()
                                for column in (schema.TITLE, schema.PETITIONER_NAME) if column in known})
        everyone = raw_names(titles[schema.PETITIONER_NAME]) if schema.PETITIONER_NAME in titles else frozenset()
    labels = labeler.labels(frame, everyone, processes)
    frame = frame.sort_values([schema.CASE_ID, schema.RECEIVED_AT, schema.LETTER_ID], na_position="last")

    def distinct(values):
        """(case, value) pairs of the non-empty values, each once; ``values`` is indexed
        like ``frame`` (an exploded column repeats index labels)."""
        pairs = pd.DataFrame({CASE: frame[schema.CASE_ID].reindex(values.index).to_numpy(),
                              VALUE: values.to_numpy()})
        return pairs[pairs[VALUE].notna() & (pairs[VALUE] != "")].drop_duplicates()

    def joined(values):
        pairs = distinct(values)
        return joined_runs(pairs[CASE], pairs[VALUE])

    grouped = frame.groupby(schema.CASE_ID, sort=False)
    table = pd.DataFrame({
        schema.CASE_LABEL: pd.Series(labels, dtype="str"),
        schema.CASE_LETTER_IDS: joined_runs(frame[schema.CASE_ID], frame[schema.LETTER_ID]),
        schema.CASE_FIRST_DATE: grouped[schema.RECEIVED_AT].min().dt.strftime("%Y-%m-%d"),
        schema.CASE_LAST_DATE: grouped[schema.RECEIVED_AT].max().dt.strftime("%Y-%m-%d"),
        schema.CASE_LETTERS: grouped.size(),
        schema.CASE_PETITIONERS: distinct(frame[schema.PETITIONER_KEY]).groupby(CASE, sort=False).size(),
        schema.CASE_ADDRESSEES: joined(frame[schema.ADDRESSEE]),
        schema.CASE_TOPICS: joined(frame[schema.TOPICS].str.split("|").explode()),
        schema.CASE_RUN_LETTERS: grouped[IN_RUN].sum(),
        schema.CASE_STATUS: grouped[BEFORE].any().map({True: schema.CASE_CONTINUES, False: schema.CASE_NEW}),
    })
    table.loc[grouped[schema.REOPENED].any(), schema.CASE_STATUS] = schema.CASE_REOPENED
    table = table.fillna({schema.CASE_LABEL: "", schema.CASE_FIRST_DATE: "", schema.CASE_LAST_DATE: "", schema.CASE_PETITIONERS: 0,
                          schema.CASE_ADDRESSEES: "", schema.CASE_TOPICS: ""})
    table[schema.CASE_PETITIONERS] = table[schema.CASE_PETITIONERS].astype(int)
    return table.rename_axis(schema.CASE_ID).reset_index()[list(schema.CASE_COLUMNS)]
