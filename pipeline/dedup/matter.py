"""What makes two letters one matter when their wording differs: the specific names they
share and the words they share (TF-IDF cosine).

* ``NameExtractor`` finds specific names: places and organisations by their suffix
  (…村, …小区, …路, …公司, …医院; the suffix and the two characters before it, so
  "位于小塘路以东" and "小塘路南侧" both give 小塘路), masked people (张某: every mask form
  was unified to 某 by normalize, so 郭×× and 郭某 compare equal), and the organisation
  terms of the petition dictionary (城管局, 派出所) found among the letter's tokens.
* ``TermVectorizer`` turns tokens into L2-normalised TF-IDF vectors. Terms are hashed and
  weighted by a fixed IDF table (jieba's, from a large general corpus), not one fitted on
  the letters: a pair's cosine then depends on the two letters only, so matching the
  night's letters against the index gives the same answer as one run over everything.
"""
import datetime
import functools
import re
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize

from pipeline.normalize import CJK
from pipeline.segment import JIEBA_DICT

JIEBA_IDF = JIEBA_DICT.parent / "analyse" / "idf.txt"
EPOCH = datetime.date(1970, 1, 1)


@functools.lru_cache(maxsize=4)
def load_tags(path=JIEBA_DICT):
    """{word: part-of-speech tag} of a jieba dictionary (``word freq tag`` lines)."""
    tags = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 3:
            tags[parts[0]] = parts[2]
    return tags


def dictionary_terms(path, tags=("nt",)):
    """Words of a jieba user dictionary (``word [freq [tag]]`` lines) with one of ``tags``."""
    words = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] in tags:
            words.append(parts[0])
    return words


class NameExtractor:
    """Find the specific names in a letter: the evidence that two differently worded letters
    are about one matter.

    * Places and organisations by their suffix (…村, …小区, …公司, …有限公司, …府): the
      suffix and up to ``max_prefix_chars`` characters before it, cut at a stop character
      (的, 我, 县 ...), punctuation or another suffix (镇, 街道, 村 ...), so
      "在青山县众鑫劳务有限公司上班" gives 众鑫劳务有限公司, "春华镇金鼎村" gives 金鼎村 and
      "位于小塘路以东" gives 小塘路. Generic phrases are dropped by jieba's fixed IDF table
      (a common word as the prefix, or across the prefix/suffix seam: 拆迁公司, 相信政府),
      or are dictionary words themselves (走投无路, 人民政府); leading function words are
      stripped (督促江南华府 gives 江南华府). Dropped too are names with fewer than ``prefix_chars`` prefix
      characters (酒厂) and boundary-level units on their own (城关街道, 柳溪镇: too coarse
      to identify a matter).
    * Institutions whose own name is a common word (中医院, 人民医院, 第一中学) are named with
      the place written before them (江北市中医院, 青山县人民医院) when their suffix is one
      of ``qualified_suffixes``.
    * Numbers that pin a matter down: full dates (2022年6月23日), amounts, counts and case
      numbers with a unit (12.5万元, 1850元, 71户, 2731号) with at least
      ``min_number_digits`` digits (or a decimal point). A date within
      ``own_date_days`` of the letter's own date is its signature line, not evidence.
      Amounts of money (``money_units``) are rounded to ``amount_digits`` significant
      digits, as people quote one sum differently (14510元, 1.5万元 both give ≈1.5万元).
    * People's full names among the tokens (邹国强: a surname, then one or two characters
      that make no dictionary word), when ``full_names``; the names normalize masked count as
      the keyed hashes it kept of them (``masked_names``: 张:3f9a…, shown as 张某).
    * Masked people (张某: every mask form was unified to 某 by normalize, so 郭×× and 郭某
      compare equal) and the organisation terms of the petition dictionary (城管局, 派出所)
      among the letter's tokens: shown as evidence, too common to count.

    Parameters
    ----------
    suffixes : list of str
        Place and organisation suffixes (村, 小区, 路, 公司 ...).
    prefix_chars : int
        Fewest characters before the suffix (2: 金鼎村, 小塘路; 酒厂 is not a name).
    stop_chars : str
        Characters that cannot be part of a name (的, 了, 我 ...).
    generic_prefixes : list of str
        Prefixes that make a generic phrase, not a name (附近小区, 周边道路).
    surnames : str
        Surnames recognised before the name mask (张某).
    mask_char : str
        The unified name mask (normalize's ``mask_char``).
    terms : list of str
        Dictionary terms (organisations) shown when they are a token.
    idf : dict, optional
        {word: idf} of a general corpus (jieba's).
    common_idf : float
        Words with an IDF below this are common (see above).
    max_prefix_chars : int
        Most characters kept before the suffix.
    boundary_suffixes : list of str
        Units a name is also cut after (春华镇|金鼎村; it is cut after every suffix) that
        are not names on their own (县, 镇, 街道): too coarse.
    number_units : list of str
        Units after a number that make it evidence.
    min_number_digits : int
    own_date_days : int
    money_units : dict
        {unit: yuan}: the units of amounts of money (元: 1, 万元: 10000).
    amount_digits : int
        Significant digits amounts are compared at.
    qualified_suffixes : list of str
        Suffixes of institutions named with the place before them (see above).
    name_tags : list of str
        Tags of dictionary words that are names (a road jieba knows: 育才路 ns).
    full_names : bool
        Count people's full names found among the tokens (see ``_people``).
    tags : dict, optional
        {word: part-of-speech tag} of a general dictionary (default: jieba's); a name that
        is a dictionary word is not a local name.
    strip_tags : list of str
        Tags of the words stripped from the start of a prefix (the configuration's
        ``name_strip_tags``: verbs, adverbs, prepositions ...); none by default.
    non_names : list of str
        Words a name cannot end on (``non_name_words``: 开园, 城中村): events and place words
        every city has.
    end_tags : list of str
        Tags of the words a name's prefix cannot end on after one character, a common word or
        another such word (``name_end_tags``: 严重|影响|小区, 门口|开设|医院).
    end_chars : str
        Characters a name's prefix cannot end on (``name_end_chars``: 多次向|村).
    """

    def __init__(self, *, suffixes, prefix_chars=2, stop_chars="", generic_prefixes=(), surnames="",
                 mask_char="某", terms=(), idf=None, common_idf=9.0, max_prefix_chars=6,
                 boundary_suffixes=(), number_units=(), min_number_digits=3, own_date_days=7,
                 money_units=None, amount_digits=2, qualified_suffixes=(), name_tags=("ns", "nz"), full_names=True,
                 tags=None, strip_tags=(), non_names=(), end_tags=(), end_chars=""):
        if not suffixes:
            raise ValueError("at least one name suffix is needed")
        suffix = "|".join(sorted(map(re.escape, set(suffixes) | set(boundary_suffixes)), key=len, reverse=True))
        self._suffix_re = re.compile(suffix)
        self._name_char = re.compile(rf"[{CJK}A-Za-z0-9]")
        self._ends_with_suffix = re.compile(rf"(?:{suffix})$")
        self._boundary = re.compile(rf"^.*(?:{suffix})")
        self.coarse = frozenset(boundary_suffixes) - set(suffixes)  # units too coarse to be names
        self.boundary_chars = frozenset(unit for unit in boundary_suffixes if len(unit) == 1)
        self.qualified_suffixes, self.name_tags = frozenset(qualified_suffixes), frozenset(name_tags)
        self._person = re.compile(rf"[{re.escape(surnames)}]{re.escape(mask_char)}") if surnames else None
        self.mask_char, self.full_names = mask_char, full_names
        # a token (space-separated) of 2-3 Chinese characters, a surname first (looked ahead
        # for first: ``re`` skips to the surnames instead of trying the look-behind everywhere)
        self._full_name = (re.compile(rf"(?=[{re.escape(surnames)}])(?<!\S)(?=[{CJK}])[{re.escape(surnames)}]"
                                      rf"[{CJK}]{{1,2}}(?!\S)")
                           if surnames else None)
        units = "|".join(sorted(map(re.escape, number_units), key=len, reverse=True))
        self._number = re.compile(
            r"(?=\d)(?<![0-9.])(?:(\d{4})年(\d{1,2})月(\d{1,2})日"
            + (rf"|(\d+(?:\.\d+)?)({units}))" if units else r"|(?!)()())"))
        self.min_prefix, self.max_prefix = prefix_chars, max_prefix_chars
        self.min_number_digits, self.own_date_days = min_number_digits, own_date_days
        self.money_units, self.amount_digits = dict(money_units or {}), amount_digits
        self.stop_chars = set(stop_chars)
        self.generic_prefixes = tuple(generic_prefixes)
        self.terms = frozenset(terms)
        self.idf, self.common_idf = idf or {}, common_idf
        self.tags = load_tags() if tags is None else tags
        self.strip_tags = frozenset(strip_tags)
        self.non_names, self.end_tags, self.end_chars = tuple(non_names), frozenset(end_tags), set(end_chars)

    @classmethod
    def from_config(cls, config, idf=None):
        """The extractor the ``dedupe`` settings describe; ``idf`` defaults to jieba's table."""
        c = config.dedupe
        if idf is None:
            words, values, _ = load_idf()
            idf = dict(zip(words, values.tolist()))
        return cls(suffixes=c.name_suffixes, prefix_chars=c.name_prefix_chars, stop_chars=c.name_stop_chars,
                   generic_prefixes=c.generic_name_prefixes, surnames=c.surnames,
                   mask_char=config.normalize.mask_char,
                   terms=dictionary_terms(config.paths.dict_dir / "petition_dict.txt"),
                   idf=idf, common_idf=c.name_common_idf, max_prefix_chars=c.name_max_prefix_chars,
                   boundary_suffixes=c.name_boundary_suffixes, number_units=c.number_units,
                   min_number_digits=c.min_number_digits, own_date_days=c.own_date_days,
                   money_units=c.money_units, amount_digits=c.amount_digits,
                   qualified_suffixes=c.qualified_suffixes, name_tags=c.name_tags, full_names=c.full_names,
                   tags=load_tags(), strip_tags=c.name_strip_tags, non_names=c.non_name_words,
                   end_tags=c.name_end_tags, end_chars=c.name_end_chars)

    def _strip(self, prefix):
        """``prefix`` without leading function words (verbs, adverbs, conjunctions ...:
        督促|江南华府, 但|江南华府), keeping at least ``min_prefix`` characters, never leaving a
        common word (东方|明珠苑 stays whole) and never splitting a word (中海国际社区 keeps 中:
        中海 is a word)."""
        while True:
            for k in range(min(4, len(prefix) - self.min_prefix), 0, -1):
                tag = self.tags.get(prefix[:k])
                # single-character verbs start names too often (筑|梦星园, 爱|尔眼科医院)
                if (tag in self.strip_tags and (k > 1 or tag != "v") and not self._common(prefix[k:])
                        and not self._splits_word(prefix, k)):
                    prefix = prefix[k:]
                    break
            else:
                return prefix

    def _splits_word(self, prefix, cut):
        """Whether a dictionary word of 2-4 characters starting before ``cut`` runs across it."""
        return any(prefix[:end] in self.tags for end in range(cut + 1, min(4, len(prefix)) + 1))

    def _ends_phrase(self, prefix):
        """Whether ``prefix`` ends a phrase, not a name: on one of ``end_chars`` (多次向|村), or
        on a word of ``end_tags`` after one character, a common word or another such word
        (且|进出|医院, 门口|开设|医院, 噪音|严重|影响|小区; 尖山|安置|小区 is a name)."""
        if prefix[-1:] in self.end_chars:
            return True
        word = self._last_word(prefix)
        before = prefix[:-len(word)]
        return self.tags.get(word) in self.end_tags and (
            len(before) == 1 or self._common(before) or self.tags.get(self._last_word(before)) in self.end_tags)

    def _last_word(self, text):
        """The longest dictionary word of 2-4 characters ending ``text`` and shorter than it, or ""."""
        return next((text[-k:] for k in range(min(4, len(text) - 1), 1, -1) if text[-k:] in self.tags), "")

    def _common(self, word):
        return self.idf.get(word, self.common_idf) < self.common_idf

    def _prefix(self, text, end):
        """The name characters before position ``end``: at most ``max_prefix`` of them,
        after the last stop character, punctuation or boundary unit."""
        start = end
        while (start > 0 and end - start < self.max_prefix and text[start - 1] not in self.stop_chars
               and self._name_char.match(text[start - 1])):
            start -= 1
        prefix = text[start:end]
        rest = self._boundary.sub("", prefix)  # 春华镇|金鼎, 江南华府|房地产
        return rest if len(rest) >= self.min_prefix else prefix

    def _dictionary_name(self, word):
        """A dictionary word is a name when tagged as one (育才路, 中山路: ``name_tags``), not
        when it is a common word (走投无路, 人民政府)."""
        return word if self.tags.get(word) in self.name_tags else None

    def _qualified(self, text, start, word):
        """``word`` (中医院, starting at ``start``) with the place written right before it
        when that place ends in a one-character unit (江北|市|中医院); None without one."""
        if start == 0 or text[start - 1] not in self.boundary_chars:
            return None
        unit = start - 1
        place = self._prefix(text, unit)
        if len(place) < self.min_prefix or self._ends_with_suffix.search(place[:-1] or "-"):
            return None
        return place + text[unit] + word

    def _places(self, text):
        names = set()
        for match in self._suffix_re.finditer(text):
            suffix = match.group(0)
            if suffix in self.coarse:
                continue
            raw_prefix = self._prefix(text, match.start())
            name = self._local_name(raw_prefix, suffix)
            if name is None and suffix in self.qualified_suffixes and not self._ends_phrase(raw_prefix):
                name = self._qualified(text, match.start() - len(raw_prefix), raw_prefix + suffix)
            if name:
                names.add(name)
        return names

    def _local_name(self, prefix, suffix):
        """``prefix + suffix`` without leading function words when it is a local name, else None."""
        if len(prefix) < self.min_prefix or (prefix + suffix).endswith(self.non_names):
            return None  # 南路 (A1区|南路), 幼儿园开园: too short, or an event after a name
        if prefix + suffix in self.tags:
            return self._dictionary_name(prefix + suffix)
        prefix = self._strip(prefix)
        name = prefix + suffix
        if name in self.tags or name in self.idf:
            return self._dictionary_name(name)
        if (len(prefix) < self.min_prefix or prefix.endswith(self.generic_prefixes)
                or self._ends_with_suffix.search(prefix) or self._ends_phrase(prefix)):
            return None  # the last: 七里组村民 gives 七里组, not 里组村
        if (self._common(name) or self._common(prefix) or self._common(prefix[-1] + suffix[0])
                or self._common(prefix[-1] + suffix)):
            return None  # 拆迁公司, 相信政府, 高速铁路
        return name

    def _people(self, tokens):
        """Full names of people among the tokens: 2-3 characters, a surname first, a word of
        no dictionary (jieba's HMM made it: 雷伟, 邹国强); masked names (雷某) are too common."""
        if not self.full_names or self._full_name is None:
            return set()
        return {token for token in self._full_name.findall(tokens)
                if self.mask_char not in token and token not in self.tags and token not in self.idf
                and token not in self.terms}

    def numbers(self, text, day=None):
        """The numbers of ``text`` that pin a matter down (full dates, amounts, counts, case
        numbers: see the class), as they are compared (≈1.5万元)."""
        found = set()
        own_day = None if day is None else int(day.astype(np.int64))  # days since 1970
        for match in self._number.finditer(text):
            year, month, dom, number, unit = match.groups()
            if year:
                try:  # datetime.date, not numpy: a hundred times faster per date
                    date = (datetime.date(int(year), int(month), int(dom)) - EPOCH).days
                except ValueError:
                    continue
                if own_day is not None and abs(date - own_day) <= self.own_date_days:
                    continue
                found.add(f"{year}年{int(month)}月{int(dom)}日")
            elif "." in number or len(number.lstrip("0")) >= self.min_number_digits:
                found.add(self._amount(float(number) * self.money_units[unit]) if unit in self.money_units
                          else number + unit)
        return found

    def _amount(self, yuan):
        """A sum of money at ``amount_digits`` significant digits: ≈330元, ≈1.5万元."""
        rounded = float(f"{yuan:.{self.amount_digits}g}")
        return f"≈{rounded / 10_000:g}万元" if rounded >= 10_000 else f"≈{rounded:g}元"

    def extract(self, text, tokens="", day=None, masked="", numbers=None):
        """Return the sorted specific names of ``text`` (str) and its space-joined ``tokens``.

        ``day`` (numpy datetime64[D] or None) is the letter's date; ``masked`` the letter's
        ``masked_names``: keyed hashes of the people's names normalize masked ("|"-joined,
        ``张:3f9a…``), counted as full names are, when ``full_names``; ``numbers`` its
        :meth:`numbers`, when the caller has them.

        Returns
        -------
        specific : list of str
            Place and organisation names and numbers: the evidence and blocking keys.
        others : list of str
            Masked people and dictionary organisation terms (shown, not counted).
        """
        numbers = self.numbers(text, day) if numbers is None else numbers
        specific = self._places(text) | numbers | self._people(tokens)
        if self.full_names and masked:
            specific.update(masked.split("|"))
        others = set(self._person.findall(text)) if self._person else set()
        others.update(token for token in tokens.split() if token in self.terms)
        return sorted(specific), sorted(others - specific)


def top_entries(matrix, count):
    """Positions (in ``matrix.data``) of the ``count`` highest weights of each row of a CSR
    matrix of non-negative weights, row by row, highest first; equal weights keep their
    stored order (the column order, once indices are sorted)."""
    lengths = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.uint64), lengths)
    # one integer key: the row, then the weight descending (a non-negative float's bits
    # order like its value); a stable sort, 5x faster than np.lexsort
    weight = ~np.asarray(matrix.data, dtype=np.float32).view(np.uint32)
    order = np.argsort((rows << np.uint64(32)) | weight.astype(np.uint64), kind="stable")
    rank = np.arange(len(order)) - np.repeat(matrix.indptr[:-1], lengths)
    return order[rank < count]


def load_idf(path=JIEBA_IDF):
    """Read a ``word idf`` table (default: jieba's); returns (words, idf values as float32,
    median idf)."""
    words, values = [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2:
            words.append(parts[0])
            values.append(float(parts[1]))
    values = np.asarray(values, dtype=np.float32)
    return words, values, float(np.median(values))


class TermVectorizer:
    """Hashed TF-IDF with a fixed IDF table and the top terms of each letter.

    Parameters
    ----------
    n_features : int
        Hash space of the terms.
    top_terms : int
        Terms kept per letter (the highest weights); the index stores only these.
    idf_path : path
        ``word idf`` table; words missing from it (names, places) get its median IDF.
    """

    def __init__(self, n_features=2**20, top_terms=100, idf_path=JIEBA_IDF):
        self.n_features, self.top_terms = n_features, top_terms
        self._hasher = HashingVectorizer(analyzer=str.split, n_features=n_features,
                                         alternate_sign=False, norm=None, dtype=np.float32)
        words, values, median = load_idf(idf_path)
        self.word_idf, self.median_idf = dict(zip(words, values.tolist())), median
        self.idf = np.full(n_features, median, dtype=np.float32)
        column = self._hasher.transform(words).tocoo().col
        self.idf[column] = values  # a hash collision keeps one of the words' weights

    def transform(self, tokens):
        """Vectors of space-joined token strings: CSR float32, rows L2-normalised."""
        if not len(tokens):  # HashingVectorizer cannot transform nothing
            return sp.csr_matrix((0, self.n_features), dtype=np.float32)
        counts = self._hasher.transform(tokens).tocsr()
        counts.sum_duplicates()
        counts.data = np.log1p(counts.data) * self.idf[counts.indices]  # sublinear tf × idf
        return normalize(self._top(counts), copy=False)

    def columns(self, tokens):
        """The term columns of space-joined token strings: a CSR matrix whose row ``i`` holds
        the columns of ``tokens[i]``'s terms, each once (sorted)."""
        if not len(tokens):
            return sp.csr_matrix((0, self.n_features), dtype=np.float32)
        matrix = self._hasher.transform(tokens).tocsr()
        matrix.sum_duplicates()
        matrix.sort_indices()
        return matrix

    def _top(self, matrix):
        if np.diff(matrix.indptr).max(initial=0) <= self.top_terms:
            return matrix
        keep = np.zeros(matrix.nnz, dtype=bool)
        keep[top_entries(matrix, self.top_terms)] = True
        matrix.data[~keep] = 0
        matrix.eliminate_zeros()
        return matrix
