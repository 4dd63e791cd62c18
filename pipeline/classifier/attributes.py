"""Letter attributes other than the topic, by the rule tables of ``corpora/attributes.yaml``.

The rules (keywords, regular expressions, name lists, place suffixes) live in that file;
this module only applies them:

* nature (性质): the first category in ``nature.order`` with a matching pattern, else the
  fallback; a trained nature model, when classify has one, overrides it where it is confident;
* law_litigation (涉法涉诉): any ``law_litigation`` pattern matches;
* anonymous (匿名): normalize found no petitioner (``petitioner_key_basis == 'none'``), or the
  name is an anonymous value or pattern and no ID number or phone identifies the writer, or
  the text says the writer withholds a name;
* signatory_count / joint (联名): the signatories column when it has a number, else (not for
  visits, whose head counts are visitors) the names listed after a signature marker or a head
  count in the text; joint from ``min_count``;
* collective (集体访): the head count (visitors column, else a count in a visit's text) is at
  least ``min_visitors``; with no head count, a marker word in a visit's text;
* home_level: the lowest level of the places named in the text (by suffix, ignoring
  ``not_places``), '' when none; skip_level (越级): the addressee's level is above both the
  home level and the county (where petitions are first handled).
"""
import re
from pathlib import Path

import pandas as pd
import yaml

from pipeline import parallel, schema
from pipeline.errors import PetitionError

_REGEX_SYNTAX = set("\\()[]{}.^$*+?|")  # a pattern starting with none of these starts with a literal
_KEPT_PLACES = 100_000  # place words whose level home_level keeps
_PLACE_CHARS = 8  # most Chinese characters of a place name before its suffix
_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


def parse_number(text):
    """An Arabic or Chinese numeral ('17', '十二', '三十五', '一百二十') as int; 0 if unreadable."""
    if text.isdigit():
        return int(text)
    total, digit = 0, 0
    for char in text:
        if char in _DIGITS:
            digit = _DIGITS[char]
        elif char in "十百":
            total += (digit or 1) * (10 if char == "十" else 100)
            digit = 0
        else:
            return 0
    return total + digit


def _compile(patterns):
    """One regular expression matching where any of ``patterns`` matches (tried in order), or None.

    Each pattern is checked alone, as a group; they are joined bare: the same alternatives in
    the same order, but when each starts with a literal character ``re`` skips the positions
    where none can start (it does not look for those characters inside groups).
    """
    if not patterns:
        return None
    for pattern in patterns:
        re.compile(f"(?:{pattern})")
    return re.compile("|".join(patterns))


class AnyPattern:
    """Whether any of ``patterns`` (regular expressions) matches somewhere in a text.

    ``search(text)`` is ``bool(_compile(patterns).search(text))``, faster: the patterns that
    start with a literal character are searched joined (``re`` skips to where one can start),
    each of the others alone (alone, a pattern starting with a group of words is skipped
    through as well; inside a longer alternation it would be tried at every position).
    """

    def __init__(self, patterns):
        _compile(patterns)  # each pattern checked as before
        literal = [pattern for pattern in patterns if pattern[:1] not in _REGEX_SYNTAX]
        self.patterns = [*([re.compile("|".join(literal))] if literal else []),
                         *(re.compile(pattern) for pattern in patterns if pattern[:1] in _REGEX_SYNTAX)]

    def search(self, text):
        return any(pattern.search(text) for pattern in self.patterns)


class AttributeRules:
    """The rule tables, compiled.

    Parameters
    ----------
    tables : dict
        The parsed ``attributes.yaml``.
    """

    def __init__(self, tables):
        try:
            nature = tables["nature"]
            self.nature_order = [(name, AnyPattern(nature["patterns"][name])) for name in nature["order"]]
            self.nature_fallback = nature["fallback"]
            self.law = AnyPattern(tables["law_litigation"]["patterns"])
            anonymous = tables["anonymous"]
            self.identifying_bases = set(anonymous["identifying_bases"])
            self.anonymous_names = set(anonymous["name_values"])
            self.anonymous_name = AnyPattern(anonymous["name_patterns"])
            self.anonymous_text = AnyPattern(anonymous["text_markers"])
            joint = tables["joint"]
            self.joint_marker = _compile(joint["markers"])
            self.name_separator = re.compile(joint["name_separators"])
            self.signatory_name = re.compile(joint["name_pattern"])
            self.joint_counts = [re.compile(p) for p in joint["count_patterns"]]
            self.min_signatories = joint["min_count"]
            collective = tables["collective"]
            self.min_visitors = collective["min_visitors"]
            self.visit_counts = [re.compile(p) for p in collective["count_patterns"]]
            self.collective_marker = AnyPattern(collective["markers"])
            skip = tables["skip_level"]
            self.levels = list(skip["levels"])
            suffixes = sorted(((suffix, level) for level, words in skip["place_levels"].items() for suffix in words),
                              key=lambda pair: -len(pair[0]))
            self.suffix_level = dict(suffixes)
            self.suffix = re.compile("|".join(map(re.escape, self.suffix_level)))  # the longest first
            self.suffix_start = re.compile(f"[{''.join(sorted({suffix[0] for suffix in self.suffix_level}))}]")
            self.not_places = tuple(skip["not_places"])
            self._word_levels = {}
        except (KeyError, TypeError, re.error) as exc:
            raise PetitionError(f"attribute rules: missing or invalid entry ({exc!r})") from exc

    @classmethod
    def load(cls, path):
        path = Path(path)
        try:
            return cls(yaml.safe_load(path.read_text(encoding="utf-8")))
        except OSError as exc:
            raise PetitionError(f"{path}: cannot read attribute rules ({exc})") from exc
        except PetitionError as exc:
            raise PetitionError(f"{path}: {exc}") from exc

    def nature(self, text):
        return next((name for name, pattern in self.nature_order if pattern.search(text)),
                    self.nature_fallback)

    def law_litigation(self, text):
        return self.law.search(text)

    def anonymous(self, name, key_basis, text):
        name = name.strip()
        unnamed = name in self.anonymous_names or bool(name) and self.anonymous_name.search(name)
        return (key_basis == "none" or (unnamed and key_basis not in self.identifying_bases)
                or self.anonymous_text.search(text))

    def signatories_in_text(self, text):
        """Most signatories the text shows: names listed after a marker, or a stated count."""
        best = 0
        for match in self.joint_marker.finditer(text):
            pieces = self.name_separator.split(text[match.end():match.end() + 60].split("\n")[0])
            names = 0
            for piece in pieces:
                if not self.signatory_name.match(piece.strip()):
                    break
                names += 1
            best = max(best, names)
        for pattern in self.joint_counts:
            for match in pattern.finditer(text):
                best = max(best, parse_number(match.group(1)))
        return best

    def visitors_in_text(self, text):
        return max((parse_number(m.group(1)) for p in self.visit_counts for m in p.finditer(text)), default=0)

    def home_level(self, text):
        """The lowest level of the places the text names, or ''."""
        found = {self._place_level(word) for word in self.place_words(text)} - {None}
        return min(found, key=self.levels.index) if found else ""

    def place_words(self, text):
        r"""The words of ``re.finditer(r"[\u4e00-\u9fff]{1,8}?(?:suffix|...)", text)`` (the
        suffixes longest first), found from where a suffix starts: ``re`` would try the lazy
        run at every character. A word is the Chinese characters (1 to 8) before the first
        suffix start after its own start, then that suffix; the next word starts after it."""
        words, searched = [], 0  # text[:searched] is passed: no word starts before it
        for found in self.suffix_start.finditer(text):
            end = found.start()
            suffix = self.suffix.match(text, end)
            if suffix is None or end <= searched:
                continue
            start, lowest = end, max(searched, end - _PLACE_CHARS)
            while start > lowest and "\u4e00" <= text[start - 1] <= "\u9fff":
                start -= 1
            if start < end:
                words.append(text[start:suffix.end()])
                searched = suffix.end()
            else:  # no word starts before this suffix: the next one may start here
                searched = end
        return words

    def _place_level(self, word):
        """The level of a place name found in a text (by its longest suffix), None for a
        word of ``not_places``; place names repeat, so their levels are kept (a bounded number)."""
        if word not in self._word_levels:
            if len(self._word_levels) >= _KEPT_PLACES:
                self._word_levels.clear()
            self._word_levels[word] = None if word.endswith(self.not_places) else next(
                level for suffix, level in self.suffix_level.items() if word.endswith(suffix))
        return self._word_levels[word]

    def skip_level(self, addressee_level, home_level):
        if addressee_level not in self.levels:
            return False
        floor = max(self.levels.index("county"), self.levels.index(home_level) if home_level else 0)
        return self.levels.index(addressee_level) > floor


INPUTS = [schema.CLEAN_TEXT, schema.PETITIONER_NAME, schema.PETITIONER_KEY_BASIS, schema.SIGNATORIES,
          schema.VISITORS, schema.CHANNEL, schema.ADDRESSEE_LEVEL]
COLUMNS = [schema.NATURE, schema.LAW_LITIGATION, schema.ANONYMOUS, schema.JOINT, schema.SIGNATORY_COUNT,
           schema.COLLECTIVE, schema.HOME_LEVEL, schema.SKIP_LEVEL]


def letter_attributes(letters, rules, processes=1, chunk_size=1000):
    """Attributes of each letter.

    Parameters
    ----------
    letters : DataFrame
        Normalize output columns: clean_text, petitioner_name, petitioner_key_basis,
        signatories, visitors, channel, addressee_level (``INPUTS``).
    rules : AttributeRules
    processes, chunk_size : the letters are read in chunks by this many forked workers

    Returns
    -------
    DataFrame with NATURE, LAW_LITIGATION, ANONYMOUS, JOINT, SIGNATORY_COUNT, COLLECTIVE,
    HOME_LEVEL, SKIP_LEVEL (``COLUMNS``), on the index of ``letters``.
    """
    rows = parallel.map_chunks(lambda chunk: [record_attributes(record, rules) for record in chunk],
                               attribute_records(letters), processes, chunk_size)
    return attribute_frame(rows, letters.index)


def attribute_records(letters):
    """One tuple of the ``INPUTS`` per letter (list)."""
    return list(letters[INPUTS].itertuples(index=False, name=None))


def attribute_frame(rows, index):
    """The attribute DataFrame (``COLUMNS``, their types) of rows of ``record_attributes``."""
    frame = pd.DataFrame(rows, index=index, columns=COLUMNS)
    return frame.astype({schema.SIGNATORY_COUNT: "int64", schema.LAW_LITIGATION: bool, schema.ANONYMOUS: bool,
                         schema.JOINT: bool, schema.COLLECTIVE: bool, schema.SKIP_LEVEL: bool})


def record_attributes(record, rules, nature=True):
    """The attribute values (``COLUMNS``) of one letter's record of ``INPUTS`` (text, name,
    basis, signatories, visitors, channel, addressee level); ``nature`` False: the nature is
    None, not looked for (a nature model's confident answer takes its place)."""
    text, name, basis, signatories, visitors, channel, addressee_level = record
    signed = int(signatories) if pd.notna(signatories) and signatories > 0 else (
        rules.signatories_in_text(text) if channel != "visit" else 0)
    heads = int(visitors) if pd.notna(visitors) and visitors > 0 else (
        rules.visitors_in_text(text) if channel == "visit" else 0)
    home = rules.home_level(text)
    return (rules.nature(text) if nature else None, rules.law_litigation(text), rules.anonymous(name, basis, text),
            signed >= rules.min_signatories, signed,
            heads >= rules.min_visitors if heads else (channel == "visit" and rules.collective_marker.search(text)),
            home, rules.skip_level(addressee_level, home))
