"""Evidence that two letters are one matter: the numbers the match model
(``pipeline.dedup.matcher``) turns into P(same matter).

Every value depends on the two letters only (their features in the index, and fixed
tables such as jieba's IDF), never on the other letters seen: a pair scored the night its
later letter arrives scores as it would in one run over everything.

=====================  ===========================================================================
``cosine``             TF-IDF cosine of the two letters (jieba's fixed IDF)
``shared_names``       specific names both hold (places, organisations, numbers, full names)
``name_jaccard``       shared names / names either holds
``title_similarity``   rapidfuzz ratio of the two titles (0-1)
``title_names_shared`` names both titles hold
``title_name_in_other`` titles whose names the other letter also holds (0, 1 or 2)
``title_conflict``     both titles hold names (places, organisations, numbers) and neither letter
                       holds the other title's: two estates, two roads, two schools
``title_terms_in_other`` the lower of the two shares of a title's terms (its rarer words: 高铁,
                       西站) among the other letter's TF-IDF terms; NaN when neither title has
                       terms. One petitioner's stock phrases make two letters alike; this says
                       whether they are about one thing
``shared_numbers``     amounts, counts and case numbers both hold (not dates: a reminder quotes
                       the date of the letter it follows up)
``numbers_conflict``   numbers the letter with fewer numbers holds that the other does not: two
                       sums, two dates, two head counts say two events
``log_days``           log(1 + days apart); a letter without a date counts a year
``same_petitioner``    the same petitioner key (1/0)
``same_addressee``     the same addressee (1/0)
``log_chars_min``      log(1 + characters of the shorter comparison text)
``chars_ratio``        shorter / longer comparison text
=====================  ===========================================================================
"""
import numpy as np
import pandas as pd
import scipy.sparse as sp
from rapidfuzz import fuzz
from rapidfuzz.process import cpdist

from pipeline.dedup.arrays import csr_rows, unique

FEATURES = ("cosine", "shared_names", "name_jaccard", "title_similarity", "title_names_shared",
            "title_name_in_other", "title_conflict", "title_terms_in_other", "shared_numbers",
            "numbers_conflict", "log_days", "same_petitioner", "same_addressee",
            "log_chars_min", "chars_ratio")
# the direction each kind of evidence may push P(same matter) (+1 up, -1 down, 0 either): the
# model keeps to it, so a pair unlike the training pairs is not scored against common sense
MONOTONE = {"cosine": 1, "shared_names": 1, "name_jaccard": 1, "title_similarity": 1, "title_names_shared": 1,
            "title_name_in_other": 1, "title_conflict": -1, "title_terms_in_other": 1, "shared_numbers": 1,
            "numbers_conflict": -1, "log_days": -1}
UNDATED_DAYS = 365.0


class VectorRows:
    """The TF-IDF rows of some letters of the pool, each copied out of it once: the letters of
    a chunk of pairs recur (a new letter pairs with many), and the cosine and the title shares
    read the same rows.

    Parameters
    ----------
    pool : Pool
    positions : array of int
        The letters (pool positions, repeats allowed) whose rows are wanted.
    """

    def __init__(self, pool, positions):
        self.positions = unique(np.asarray(positions, dtype=np.int64))
        self.matrix = pool.vectors(self.positions)

    def __call__(self, positions):
        """The rows (CSR) of ``positions``, letters held, in that order."""
        return self.matrix[np.searchsorted(self.positions, positions)]


def _rows_of(pool, a, b, rows):
    return VectorRows(pool, np.concatenate((a, b))) if rows is None else rows


def tfidf_cosine(pool, a, b, chunk=50_000, rows=None):
    """TF-IDF cosine of letters ``a[i]``, ``b[i]`` (rows are L2-normalised; ``rows``: a
    :class:`VectorRows` holding them, else made), ``chunk`` pairs at a time."""
    rows = _rows_of(pool, a, b, rows)
    return np.concatenate([np.asarray(rows(a[start:start + chunk]).multiply(rows(b[start:start + chunk])).sum(
        axis=1)).ravel() for start in range(0, len(a), chunk)] + [np.zeros(0)])


def title_term_shares(pool, a, b, chunk=50_000, rows=None):
    """The share of each letter's title terms among the other's TF-IDF terms (NaN for a title
    without terms), ``chunk`` pairs at a time (``rows``: a :class:`VectorRows` holding the
    letters' rows, else made). Returns (share of a's in b, share of b's in a)."""
    rows = _rows_of(pool, a, b, rows)
    a_in_b, b_in_a = np.empty(len(a)), np.empty(len(a))
    values, pointers = pool.csr("title_terms")

    def titles(positions):
        columns, offsets = csr_rows(values, pointers, positions)
        return sp.csr_matrix((np.ones(len(columns), dtype=np.float32), columns, offsets),
                             shape=(len(positions), pool.n_features)), np.diff(offsets)

    with np.errstate(invalid="ignore", divide="ignore"):
        for start in range(0, len(a), chunk):
            part = slice(start, start + chunk)
            vectors_a, vectors_b = rows(a[part]), rows(b[part])
            for share, (terms, counts), other in ((a_in_b, titles(a[part]), vectors_b),
                                                  (b_in_a, titles(b[part]), vectors_a)):
                share[part] = terms.multiply(other).getnnz(axis=1) / np.where(counts > 0, counts, np.nan)
    return a_in_b, b_in_a


def shared_counts(pool, a, b, left="names", right="names"):
    """How many of the ``left`` names of letter ``a[i]`` the ``right`` names of letter ``b[i]``
    hold (CSR layouts of name hashes in the pool: ``names``, ``title_names``)."""
    values, pointers = pool.csr(left)
    names_a, offsets = csr_rows(values, pointers, a)
    pair = np.repeat(np.arange(len(a)), np.diff(offsets))
    involved = unique(b)
    values, pointers = pool.csr(right)
    names_b, offsets_b = csr_rows(values, pointers, involved)
    owner = np.repeat(involved, np.diff(offsets_b)).astype(np.uint64)
    table = np.sort((owner << np.uint64(40)) | (names_b >> np.uint64(24)))
    if not len(table):  # the b letters hold no names
        return np.zeros(len(a), dtype=np.int64)
    query = (b[pair].astype(np.uint64) << np.uint64(40)) | (names_a >> np.uint64(24))
    found = np.searchsorted(table, query)
    hit = (found < len(table)) & (table[np.minimum(found, len(table) - 1)] == query)
    return np.bincount(pair[hit], minlength=len(a))


def same_names(pool, a, b, kinds=("names", "numbers")):
    """Whether letters ``a[i]`` and ``b[i]`` hold the same names of each of ``kinds`` (CSR
    layouts of name hashes in the pool): the same places and organisations, the same sums,
    counts and case numbers; True when both hold none."""
    alike = np.ones(len(a), dtype=bool)
    for kind in kinds:
        held = pool.counts(kind)
        alike &= (held[a] == held[b]) & (shared_counts(pool, a, b, kind, kind) == held[a])
    return alike


def title_similarity(pool, a, b, workers=1):
    """rapidfuzz ratio (0-1) of the titles of letters ``a[i]`` and ``b[i]``; 0 when either has none."""
    involved = unique(np.concatenate((a, b)))
    titles = pool.texts(involved, "title")
    left, right = np.searchsorted(involved, a), np.searchsorted(involved, b)
    scores = cpdist([titles[i] for i in left.tolist()], [titles[i] for i in right.tolist()], scorer=fuzz.ratio,
                    workers=workers, dtype=np.float32) / 100.0 if len(a) else np.zeros(0)
    empty = np.array([not title for title in titles], dtype=bool)
    return np.where(empty[left] | empty[right], 0.0, scores)


def _letter_evidence(pool, a, b, cosine, shared):
    """The evidence read from per-letter values alone (and the cosine and shared names
    given): cheap for any number of pairs."""
    names = pool.counts("names")
    either = names[a] + names[b] - shared
    days = np.abs(pool.days[a] - pool.days[b])
    chars = pool.per_letter("chars").astype(float)
    shorter, longer = np.minimum(chars[a], chars[b]), np.maximum(chars[a], chars[b])
    return {
        "cosine": cosine,
        "shared_names": shared,
        "name_jaccard": np.where(either > 0, shared / np.maximum(either, 1), 0.0),
        "log_days": np.log1p(np.nan_to_num(days, nan=UNDATED_DAYS)),
        "same_petitioner": (pool.keys[a] >= 0) & (pool.keys[a] == pool.keys[b]),
        "same_addressee": (pool.addressees[a] >= 0) & (pool.addressees[a] == pool.addressees[b]),
        "log_chars_min": np.log1p(shorter),
        "chars_ratio": shorter / np.maximum(longer, 1),
    }


def _number_evidence(pool, a, b):
    """``shared_numbers`` and ``numbers_conflict`` of the pairs: cheap (a lookup of a few
    hashes), so the ceiling reads them as they are."""
    numbers, shared = pool.counts("numbers"), shared_counts(pool, a, b, "numbers", "numbers")
    return {"shared_numbers": shared, "numbers_conflict": np.minimum(numbers[a], numbers[b]) - shared}


def _frame(columns):
    if set(columns) != set(FEATURES):  # a column added to FEATURES but not made here
        raise ValueError(f"evidence columns {sorted(columns)} are not FEATURES")
    return pd.DataFrame(columns, columns=list(FEATURES)).astype(np.float32)


def pair_evidence(pool, a, b, workers=1, *, cosine=None, shared=None, rows=None):
    """The evidence (``FEATURES``, in that order) of pairs of pool positions ``a[i]``, ``b[i]``:
    a float32 DataFrame. ``cosine`` and ``shared`` (names), when the caller has them, are not
    computed again; nor are the letters' TF-IDF ``rows`` (a :class:`VectorRows`)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    rows = _rows_of(pool, a, b, rows)
    cosine = tfidf_cosine(pool, a, b, rows=rows) if cosine is None else cosine
    shared = shared_counts(pool, a, b) if shared is None else shared
    a_in_b, b_in_a = title_term_shares(pool, a, b, rows=rows)
    title_names = pool.counts("title_names")
    in_b = shared_counts(pool, a, b, "title_names", "names") > 0
    in_a = shared_counts(pool, b, a, "title_names", "names") > 0
    both_titled = (title_names[a] > 0) & (title_names[b] > 0)
    return _frame(dict(
        _letter_evidence(pool, a, b, cosine, shared),
        **_number_evidence(pool, a, b),
        title_similarity=title_similarity(pool, a, b, workers),
        title_names_shared=shared_counts(pool, a, b, "title_names", "title_names"),
        title_name_in_other=in_a.astype(int) + in_b.astype(int),
        title_conflict=both_titled & ~in_a & ~in_b,
        title_terms_in_other=np.fmin(a_in_b, b_in_a),
    ))


def evidence_ceiling(pool, a, b, *, cosine, shared):
    """The most favourable evidence pairs ``a[i]``, ``b[i]`` could have, given what is cheap to
    know of them (their ``cosine`` and ``shared`` names, shared numbers, days apart,
    petitioners, addressees, lengths, and how many title names and title terms each letter
    holds): the costly evidence of their titles at the value that raises P most, as
    ``MONOTONE`` says it acts. A model monotone in that evidence gives a pair at most the P of
    its ceiling. Returns a ``pair_evidence``-shaped frame."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    title_names, title_terms, title_bytes = (pool.counts(name) for name in ("title_names", "title_terms", "title"))
    titled = (title_bytes[a] > 0) & (title_bytes[b] > 0)
    return _frame(dict(
        _letter_evidence(pool, a, b, cosine, shared),
        **_number_evidence(pool, a, b),
        title_similarity=titled.astype(float),
        # a count of a's title names that b holds: at most a's count
        title_names_shared=title_names[a],
        title_name_in_other=(title_names[a] > 0).astype(int) + (title_names[b] > 0),
        title_conflict=np.zeros(len(a)),
        # NaN only when neither title has terms; any share is at most 1
        title_terms_in_other=np.where((title_terms[a] > 0) | (title_terms[b] > 0), 1.0, np.nan),
    ))
