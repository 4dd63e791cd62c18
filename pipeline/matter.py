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
import re
from pathlib import Path

import jieba
import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize

from pipeline.normalize import CJK

JIEBA_IDF = Path(jieba.__file__).parent / "analyse" / "idf.txt"


def dictionary_terms(path, tags=("nt",)):
    """Words of a jieba user dictionary (``word [freq [tag]]`` lines) with one of ``tags``."""
    words = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] in tags:
            words.append(parts[0])
    return words


class NameExtractor:
    """Find the specific names in a letter.

    Parameters
    ----------
    suffixes : list of str
        Place and organisation suffixes (村, 小区, 路, 公司 ...).
    prefix_chars : int
        Characters kept before the suffix: the name's key (2: 金鼎村, 小塘路).
    stop_chars : str
        Characters that cannot be part of a name (的, 了, 我 ...): a candidate whose kept
        prefix holds one (or ends with a suffix) is not a name ("我们村", "的小区").
    generic_prefixes : list of str
        Prefixes that make a generic phrase, not a name (附近小区, 周边道路).
    surnames : str
        Surnames recognised before the name mask (张某).
    mask_char : str
        The unified name mask (normalize's ``mask_char``).
    terms : list of str
        Dictionary terms (organisations) that count as names when they are a token.
    idf : dict, optional
        {word: idf} of a general corpus. A candidate that is itself a known word is kept
        (解放路, 中心医院); otherwise one whose prefix is a common word (idf below
        ``common_idf``: 设置医院, 影响小区) or whose suffix completes a common word
        (规划线路, 高速铁路) is dropped.
    common_idf : float
    """

    def __init__(self, suffixes, prefix_chars=2, stop_chars="", generic_prefixes=(), surnames="",
                 mask_char="某", terms=(), idf=None, common_idf=9.0):
        if not suffixes:
            raise ValueError("at least one name suffix is needed")
        suffix = "|".join(sorted(map(re.escape, suffixes), key=len, reverse=True))
        self._place = re.compile(rf"([{CJK}A-Za-z0-9]{{{prefix_chars}}})(?:{suffix})")
        self._suffix = re.compile(rf"(?:{suffix})$")
        self._person = re.compile(rf"[{re.escape(surnames)}]{re.escape(mask_char)}") if surnames else None
        self.stop_chars = set(stop_chars)
        self.generic_prefixes = set(generic_prefixes)
        self.terms = frozenset(terms)
        self.idf, self.common_idf = idf or {}, common_idf

    def _is_name(self, prefix, name):
        if self.stop_chars & set(prefix) or prefix in self.generic_prefixes or self._suffix.search(prefix):
            return False  # the last: 七里组村民 gives 七里组, not 里组村
        if name in self.idf:
            return True
        common = self.common_idf
        return (self.idf.get(prefix, common) >= common
                and self.idf.get(prefix[-1] + name[len(prefix)], common) >= common)

    def _places(self, text):
        names = set()
        # overlapped search: a name may start inside the previous match (春华镇金鼎村)
        position = 0
        while (match := self._place.search(text, position)) is not None:
            if self._is_name(match.group(1), match.group(0)):
                names.add(match.group(0))
            position = match.start() + 1
        return names

    def extract(self, text, tokens=""):
        """Return the sorted specific names of ``text`` (str) and its space-joined ``tokens``.

        Returns
        -------
        places : list of str
            Place and organisation names found by suffix (the blocking keys).
        others : list of str
            Masked people and dictionary organisation terms.
        """
        places = self._places(text)
        others = set(self._person.findall(text)) if self._person else set()
        others.update(token for token in tokens.split() if token in self.terms)
        return sorted(places), sorted(others - places)


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
        self.word_idf = dict(zip(words, values.tolist()))
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

    def _top(self, matrix):
        lengths = np.diff(matrix.indptr)
        if lengths.max(initial=0) <= self.top_terms:
            return matrix
        rows = np.repeat(np.arange(matrix.shape[0]), lengths)
        order = np.lexsort((-matrix.data, rows))
        rank = np.arange(len(order)) - np.repeat(matrix.indptr[:-1], lengths)
        keep = np.zeros(len(order), dtype=bool)
        keep[order[rank < self.top_terms]] = True
        matrix.data[~keep] = 0
        matrix.eliminate_zeros()
        return matrix
