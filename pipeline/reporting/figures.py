"""The report's numbers, counted once from prepared letters, as plain data with English keys.

:func:`compute_figures` returns a dict; ``tables`` and ``narrative`` are views of it and never
count anything themselves. Its keys:

``periods``
    ``now``, ``year_ago`` (同比) and ``previous`` (环比) :class:`Period`.
``items``
    letters received in the period (件次): the denominator of every share.
``overview``
    {measure: {now, year_ago, previous, vs_year_ago, vs_year_ago_pct, vs_previous,
    vs_previous_pct}} for the measures of ``VOLUME``.
``channels``, ``nature``, ``levels``, ``townships``, ``units``
    lists of rows ({..., items, share}); ``topics`` {rows, total, multi_topic}; ``topics_level1``
    {rows}: letters per first-level class of a two-level taxonomy (a letter once per class);
    ``scope`` and ``features`` {measure: {items, share}}; ``months`` rows per month;
    ``cases`` {rows, top}; ``review`` rows; ``meta`` {source, letters, undated, generated,
    version}.

Shares are percentages with one decimal, None when the whole is 0; changes likewise, None
when there is nothing to compare with or when the base compared with has fewer than
``report.min_change_base`` items (``min_change_base`` is in the figures: tables and
narrative say 基数过小 then). Cases carry a ``label`` (``dedup.cases.case_labels``) and a
masked ``excerpt``; review rows likewise; township rows say how many names came from the
address and how many from the text.
"""
import json
import re
import time

import numpy as np
import pandas as pd

from pipeline import __version__, schema
from pipeline.classifier.taxonomy import LEVEL_SEP, level_label
from pipeline.dedup.cases import raw_names
from pipeline.lookup import is_in
from pipeline.reporting.places import FROM_ADDRESS, FROM_TEXT, UNKNOWN_TOWNSHIP, find_townships

NATURES = ("申诉", "举报控告", "求决", "咨询", "意见建议")
CONSULTATION = "咨询"
UNMARKED_NATURE = "未标注"
UNNAMED_UNIT = "未注明"
_WORDS = re.compile(r"\W")   # punctuation and spaces: what normalize may change in a title
UNCLASSIFIED = "未分类"
CHANNEL_ORDER = (*schema.CHANNELS, "")     # "" (no channel) is listed only when it occurs
LEVEL_ORDER = (*schema.LEVELS, "")
# The overview's measures, in the order the report lists them.
VOLUME = ("items", "matters", schema.LETTER, "visit_batches", "visit_persons", schema.PHONE,
          schema.ONLINE, schema.MAILBOX, "consultation", "petitioners")


def pct(part, whole):
    """Share in percent, one decimal; None when the whole is 0."""
    return None if not whole else round(100.0 * part / whole, 1)


def change(now, before, min_base=1):
    """Relative change in percent, one decimal; None when there is nothing to compare with
    or ``before`` is below ``min_base`` (a base too small for a percentage to mean anything)."""
    return None if not before or before < min_base else round(100.0 * (now - before) / before, 1)


def topic_name(names, code):
    """The Chinese name of topic ``code`` from ``names``; the code itself when unknown."""
    return names.get(code, code or UNCLASSIFIED)


def _visits(frame):
    return frame[frame[schema.CHANNEL] == schema.VISIT]


def _count_topics(frame, level=2):
    """Letters per topic label (``level`` 1: per first-level class, a letter once per class)."""
    topics = frame[schema.TOPIC_LIST]
    if level == 1:
        topics = topics.map(lambda labels: list(dict.fromkeys(level_label(label, 1) for label in labels)))
    return topics.explode().dropna().value_counts()


def _candidates(top3):
    """[(code, probability)] of a ``top3`` JSON cell; empty when it is empty or unreadable."""
    try:
        return [(str(code), float(p)) for code, p in json.loads(top3)] if top3 else []
    except (TypeError, ValueError):
        return []


class _Counter:
    """Counts over the period's letters; one method per part of the figures."""

    def __init__(self, letters, period, settings, topic_names, known_townships=(), labeler=None):
        self.letters, self.period, self.settings, self.names = letters, period, settings, topic_names
        self.known_townships, self.labeler = known_townships, labeler
        self.everyone = raw_names(letters[schema.PETITIONER_NAME]) if schema.PETITIONER_NAME in letters else frozenset()
        dates = letters[schema.RECEIVED_AT]
        self.previous, self.year_ago = period.shift(-1), period.year_before()
        self.now = letters[period.mask(dates)]
        self.prev = letters[self.previous.mask(dates)]
        self.ago = letters[self.year_ago.mask(dates)]
        self.items = len(self.now)

    def share(self, part):
        return pct(part, self.items)

    def change(self, now, before):
        return change(now, before, self.settings.min_change_base)

    def labels(self, case_ids):
        """{case id: label} of ``case_ids`` from all their letters."""
        letters = self.letters[is_in(self.letters[schema.CASE_ID], set(case_ids))]
        return self.labeler.labels(letters, self.everyone)

    def excerpt(self, row):
        """The start of a letter's clean text after its title, identifiers, names and address masked."""
        text, title = row.get(schema.CLEAN_TEXT, ""), row.get(schema.TITLE, "")
        title = title.strip() if isinstance(title, str) else ""
        if isinstance(text, str) and title and _WORDS.sub("", text[:len(title)]) == _WORDS.sub("", title):
            text = text[len(title):]    # normalize changed its punctuation (，→,) only
        return self.labeler.excerpt(text, [row.get(schema.PETITIONER_NAME, "")],
                                    self.everyone, self.settings.excerpt_chars, [row.get(schema.ADDRESS, "")])

    @staticmethod
    def volume(frame):
        visits = _visits(frame)
        keys = frame[schema.PETITIONER_KEY]
        counts = {"items": len(frame), "matters": frame[schema.CASE_ID].nunique(),
                  "visit_batches": len(visits), "visit_persons": int(visits[schema.PERSONS].sum()),
                  "consultation": int((frame[schema.NATURE] == CONSULTATION).sum()),
                  "petitioners": keys[keys != ""].nunique()}
        for channel in (schema.LETTER, schema.PHONE, schema.ONLINE, schema.MAILBOX):
            counts[channel] = int((frame[schema.CHANNEL] == channel).sum())
        return counts

    def overview(self):
        now, ago, prev = self.volume(self.now), self.volume(self.ago), self.volume(self.prev)
        return {name: {"now": now[name], "year_ago": ago[name], "previous": prev[name],
                       "vs_year_ago": now[name] - ago[name], "vs_year_ago_pct": self.change(now[name], ago[name]),
                       "vs_previous": now[name] - prev[name],
                       "vs_previous_pct": self.change(now[name], prev[name])}
                for name in VOLUME}

    def each(self, column, order):
        """(value, the period's letters holding it) for each value of ``order`` ("" only if it occurs)."""
        for value in order:
            chosen = self.now[self.now[column] == value]
            if value or not chosen.empty:
                yield value, chosen

    def channels(self):
        return [{"channel": channel, "items": len(chosen), "share": self.share(len(chosen)),
                 "persons": int(chosen[schema.PERSONS].sum()) if channel == schema.VISIT else None}
                for channel, chosen in self.each(schema.CHANNEL, CHANNEL_ORDER)]

    def _topic_rows(self, counts, before, codes):
        """One row per code, most items first (stable: ties keep the order of ``codes``)."""
        rows = [{"code": code, "name": topic_name(self.names, code), "items": int(counts.get(code, 0)),
                 "share": self.share(counts.get(code, 0)), "year_ago": int(before.get(code, 0)),
                 "vs_year_ago_pct": self.change(counts.get(code, 0), before.get(code, 0))} for code in codes]
        return sorted(rows, key=lambda row: -row["items"])

    def topics(self):
        counts, before = _count_topics(self.now), _count_topics(self.ago)
        # a two-level taxonomy has too many classes to list the absent ones: topics_level1 does
        two_level = any(LEVEL_SEP in code for code in self.names)
        listed = [code for code in self.names if not two_level or code in counts.index or code in before.index]
        codes = listed + sorted(set(counts.index) - set(self.names))
        total, total_before = int(counts.sum()), int(before.sum())
        return {"rows": self._topic_rows(counts, before, codes),
                "total": {"items": total, "share": self.share(total), "year_ago": total_before,
                          "vs_year_ago_pct": self.change(total, total_before)},
                "multi_topic": int((self.now[schema.TOPIC_LIST].map(len) > 1).sum())}

    def topics_level1(self):
        counts, before = (_count_topics(frame, level=1) for frame in (self.now, self.ago))
        firsts = list(dict.fromkeys(level_label(code, 1) for code in self.names))
        return {"rows": self._topic_rows(counts, before, firsts + sorted(set(counts.index) - set(firsts)))}

    def nature(self):
        counts = self.now[schema.NATURE].replace("", UNMARKED_NATURE).value_counts()
        order = list(NATURES) + sorted(set(counts.index) - set(NATURES))
        return [{"nature": name, "items": int(counts.get(name, 0)), "share": self.share(counts.get(name, 0))}
                for name in order if name in NATURES or counts.get(name, 0)]

    def out_of_scope(self, frame):
        out = set(self.settings.out_of_scope_topics)
        return frame[schema.TOPIC_LIST].map(lambda topics: bool(topics) and set(topics) <= out)

    def scope(self):
        out = int(self.out_of_scope(self.now).sum())
        law = int(self.now[schema.LAW_LITIGATION].sum())
        return {"in_scope": {"items": self.items - out, "share": self.share(self.items - out)},
                "out_of_scope": {"items": out, "share": self.share(out)},
                "law_litigation": {"items": law, "share": self.share(law)},
                "out_of_scope_topics": [topic_name(self.names, c) for c in self.settings.out_of_scope_topics]}

    def features(self):
        now = self.now
        masks = {"repeat": now[schema.DUPLICATE_OF] != "",
                 "repeat_petition": now[schema.RELATION] == schema.REPEAT_PETITION,
                 "joint_or_collective": now[schema.JOINT] | now[schema.COLLECTIVE],
                 "joint": now[schema.JOINT], "collective": now[schema.COLLECTIVE],
                 "anonymous": now[schema.ANONYMOUS], "skip_level": now[schema.SKIP_LEVEL],
                 "law_litigation": now[schema.LAW_LITIGATION],
                 "multi_topic": now[schema.TOPIC_LIST].map(len) > 1, "needs_review": now[schema.NEEDS_REVIEW]}
        figures = {name: {"items": int(mask.sum()), "share": self.share(int(mask.sum()))}
                   for name, mask in masks.items()}
        collective_visits = _visits(now[now[schema.COLLECTIVE]])
        figures["collective_visits"] = {"items": len(collective_visits), "share": self.share(len(collective_visits)),
                                        "persons": int(collective_visits[schema.PERSONS].sum())}
        return figures

    def townships(self):
        township, source = find_townships(self.now, self.settings, self.known_townships)
        grouped = self.now.groupby(township, sort=False)
        from_address = (source == FROM_ADDRESS).groupby(township, sort=False).sum()
        from_text = (source == FROM_TEXT).groupby(township, sort=False).sum()
        size = grouped.size()
        persons = _visits(self.now).groupby(township)[schema.PERSONS].sum()
        # shares of Python ints, as the report always rounded them (numpy rounds ties otherwise)
        rows = [{"township": name, "items": items, "share": self.share(int(items)), "matters": matters,
                 "collective": collective, "visit_persons": visit_persons,
                 "from_address": int(from_address.get(name, 0)), "from_text": int(from_text.get(name, 0))}
                for name, items, matters, collective, visit_persons in zip(
                    size.index, size.values, grouped[schema.CASE_ID].nunique().values,
                    grouped[schema.COLLECTIVE].sum().astype(int).values,
                    persons.reindex(size.index).fillna(0).astype(int).values)]
        known = sorted((r for r in rows if r["township"] != UNKNOWN_TOWNSHIP), key=lambda r: -r["items"])
        return known + [r for r in rows if r["township"] == UNKNOWN_TOWNSHIP]

    def units(self):
        unit = self.now[schema.ADDRESSEE].replace("", UNNAMED_UNIT)
        grouped = self.now.groupby(unit, sort=False)
        size = grouped.size()
        levels = grouped[schema.ADDRESSEE_LEVEL].agg(lambda s: s.mode().iloc[0] if len(s.mode()) else "")
        rows = [{"unit": name, "level": level, "items": items, "share": self.share(int(items)),
                 "visit_batches": visits, "collective": collective, "skip_level": skip}
                for name, level, items, visits, collective, skip in zip(
                    size.index, levels.reindex(size.index).values, size.values,
                    grouped[schema.CHANNEL].agg(lambda s: int((s == schema.VISIT).sum())).values,
                    grouped[schema.COLLECTIVE].sum().astype(int).values,
                    grouped[schema.SKIP_LEVEL].sum().astype(int).values)]
        return sorted(rows, key=lambda r: (-r["items"], -r["collective"]))

    def levels(self):
        return [{"level": level, "items": len(chosen), "share": self.share(len(chosen)),
                 "visit_batches": len(_visits(chosen)), "visit_persons": int(_visits(chosen)[schema.PERSONS].sum())}
                for level, chosen in self.each(schema.ADDRESSEE_LEVEL, LEVEL_ORDER)]

    def months(self):
        count = max(self.settings.trend_months, self.period.months)
        first = self.period.end - pd.DateOffset(months=count)
        month = self.letters[schema.RECEIVED_AT].dt.to_period("M")
        counted = self.letters[[schema.CASE_ID, schema.CHANNEL, schema.PERSONS]]  # rows taken a month at a time
        rows = []
        for i in range(count):
            start = first + pd.DateOffset(months=i)
            this = counted[month == pd.Period(start, "M")]
            before = int((month == pd.Period(start - pd.DateOffset(years=1), "M")).sum())
            rows.append({"month": f"{start:%Y-%m}", "items": len(this), "matters": this[schema.CASE_ID].nunique(),
                         "visit_persons": int(_visits(this)[schema.PERSONS].sum()), "year_ago": before,
                         "vs_year_ago_pct": self.change(len(this), before),
                         "in_period": bool(self.period.mask(pd.Series([start])).iloc[0])})
        return rows

    def cases(self):
        top = self.settings.top_cases
        letters = self.letters[is_in(self.letters[schema.CASE_ID], self.now[schema.CASE_ID])]
        grouped = letters.groupby(schema.CASE_ID)
        size = grouped.size()
        size = size[size >= 2]
        if size.empty:
            return {"rows": [], "top": top}
        in_period = self.now.groupby(schema.CASE_ID).size()
        chosen = pd.DataFrame({"n": size, "now": in_period.reindex(size.index).fillna(0).astype(int)})
        chosen = chosen.sort_values(["n", "now"], ascending=False, kind="stable").head(top)
        rows, labels = [], self.labels(chosen.index)
        for case_id in chosen.index:
            case = grouped.get_group(case_id)
            keys = [k for k in dict.fromkeys(case[schema.PETITIONER_KEY]) if k]
            topic = case[schema.TOPIC].replace("", np.nan).dropna()
            code = topic.mode().iloc[0] if len(topic) else ""
            first = case.sort_values([schema.RECEIVED_AT, schema.LETTER_ID], na_position="last").iloc[0]
            rows.append({"case_id": case_id, "label": labels.get(case_id, ""), "excerpt": self.excerpt(first),
                         "letters": int(chosen.at[case_id, "n"]),
                         "letters_in_period": int(chosen.at[case_id, "now"]), "petitioner_keys": keys,
                         "first": case[schema.RECEIVED_AT].min(), "last": case[schema.RECEIVED_AT].max(),
                         "topic": code, "topic_name": topic_name(self.names, code) if code else "",
                         "addressees": case[schema.ADDRESSEE].replace("", np.nan).nunique()})
        return {"rows": rows, "top": top}

    def review(self):
        chosen = self.now[self.now[schema.NEEDS_REVIEW]].sort_values(schema.TOPIC_CONFIDENCE, kind="stable")
        chosen = chosen.assign(**{schema.TOPIC_CONFIDENCE: chosen[schema.TOPIC_CONFIDENCE].round(2)})
        labels = self.labels(chosen[schema.CASE_ID].unique())
        return [{"letter_id": row[schema.LETTER_ID], "received_at": row[schema.RECEIVED_AT],
                 "channel": row[schema.CHANNEL], "topic_name": topic_name(self.names, row[schema.TOPIC]),
                 "confidence": row[schema.TOPIC_CONFIDENCE],
                 "candidates": [(topic_name(self.names, c), p) for c, p in _candidates(row[schema.TOP3])],
                 "addressee": row[schema.ADDRESSEE], "case_id": row[schema.CASE_ID],
                 "label": labels.get(row[schema.CASE_ID], ""), "excerpt": self.excerpt(row)}
                for row in chosen.to_dict("records")]


def letters_with_text(letters, period):
    """Which ``letters`` (prepared; a boolean array) the figures of ``period`` read the
    ``clean_text`` of: the period's letters (townships named in texts, the review list's
    excerpts) and the earliest letter of each of their cases (a case's excerpt)."""
    now = period.mask(letters[schema.RECEIVED_AT]).to_numpy()
    cases = letters.loc[is_in(letters[schema.CASE_ID], letters.loc[now, schema.CASE_ID]),
                        [schema.CASE_ID, schema.RECEIVED_AT, schema.LETTER_ID]]
    first = cases.sort_values([schema.RECEIVED_AT, schema.LETTER_ID], na_position="last").drop_duplicates(
        schema.CASE_ID).index
    wanted = now.copy()
    wanted[letters.index.get_indexer(first)] = True
    return wanted


def compute_figures(letters, period, settings, topic_names, labeler, source="", known_townships=()):
    """Every figure of the report for ``period``.

    Parameters
    ----------
    letters : DataFrame
        Output of ``pipeline.letters.prepare`` (all letters: the history and the run).
    period : Period
    settings : ReportConfig
        ``out_of_scope_topics``, the ``township_*`` settings, ``trend_months``, ``top_cases``,
        ``min_change_base``, ``case_label_*`` and ``excerpt_chars`` are used.
    topic_names : dict
        {topic code: Chinese name}; its order is the order of equal topic counts.
    labeler : dedup.cases.Labeler
        Names cases and masks excerpts.
    source : str
        What was read, for the report's notes.
    known_townships : iterable of str
        More township names to look for in texts (``places.dictionary_townships``).

    Returns
    -------
    dict
        The figures, keyed as the module docstring lists.
    """
    counter = _Counter(letters, period, settings, topic_names, known_townships, labeler)
    return {"periods": {"now": period, "year_ago": counter.year_ago, "previous": counter.previous},
            "min_change_base": settings.min_change_base,
            "items": counter.items, "overview": counter.overview(), "channels": counter.channels(),
            "topics": counter.topics(), "topics_level1": counter.topics_level1(), "nature": counter.nature(), "scope": counter.scope(),
            "features": counter.features(), "townships": counter.townships(), "units": counter.units(),
            "levels": counter.levels(), "months": counter.months(), "cases": counter.cases(),
            "review": counter.review(),
            "meta": {"source": source, "letters": len(letters),
                     "undated": int(letters[schema.RECEIVED_AT].isna().sum()),
                     "generated": time.strftime("%Y-%m-%d %H:%M"), "version": __version__}}
