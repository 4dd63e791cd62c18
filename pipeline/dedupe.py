"""Dedupe: find copies, 一信多投, repeat petitions and letters about one matter, against the
history of every earlier letter, and group letters into cases (纯件).

A night's letters are matched with each other and with the index (``pipeline.dedupe_index``),
then added to it. Every decision is about one pair of letters and depends on those two
letters only, so N nightly runs link exactly the pairs one run over all letters links.

Candidates (pairs worth scoring), each with at least one of the night's letters:

* same comparison text (body hash): linked to the earliest letter with that text;
* MinHash LSH over character shingles: texts that share a band (``pipeline.minhash``);
* same ``petitioner_key`` within ``repeat_window_days``;
* within ``same_matter_window_days``: a shared specific name and top TF-IDF term, two
  shared top terms, or two shared specific names (``matter_keys``).

Scores of a candidate pair: character similarity (rapidfuzz ratio of the comparison texts),
TF-IDF cosine, shared specific names (``pipeline.matter``), days apart. Relation, first
that holds (a pair matching none is not linked):

1. ``multi_addressed``: near-same text (similarity >= near_same_similarity, or the same
   text), different addressees, at most ``multi_addressed_window_days`` apart;
2. ``exact_copy``: the same text;
3. ``resend``: near-same text, same (or unknown) addressee;
4. ``repeat_petition``: same petitioner, near-same text or matter score >= repeat_min_score,
   within ``repeat_window_days``;
5. ``same_matter``: near-same text, or within ``same_matter_window_days`` two shared
   specific names and cosine >= ``same_matter_two_names_cosine``, or one shared name and
   cosine >= ``same_matter_one_name_cosine``. Letters sharing no specific name are not
   linked on wording alone: phrase-built letters of one topic share as many words, and
   weak links chain into giant cases.

Specific names are places and organisations with their full name (众鑫劳务有限公司) and
numbers that pin a matter down (12.5万元, 2731号, 2022年6月23日), see ``pipeline.matter``.
Matter score (repeat petitions) = TF-IDF cosine + ``name_weight`` x shared names (at most
``max_names_counted``).
Letters without a date are compared with every candidate whatever the windows; letters
without a petitioner identity are matched on content only (never ``repeat_petition``).

Cases are the connected components of the links (``scipy.sparse.csgraph``); a case's id is
the id of its earliest letter (date, then id), so it stays put as letters are added, and
N nightly runs give the ids one run over everything gives.
"""
import dataclasses
import hashlib
import json
import multiprocessing

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rapidfuzz import fuzz
from rapidfuzz.process import cpdist
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pipeline import schema
from pipeline.dedupe_index import FORMAT_VERSION, Batch, DedupeIndex, csr_rows
from pipeline.errors import PetitionError
from pipeline.matter import NameExtractor, TermVectorizer
from pipeline.minhash import (MinHasher, band_keys, join_pairs, lsh_params, mix64, pairs_within_window,
                             text_hashes)
from pipeline.rundir import atomic_path, write_csv, write_json

NEEDED_COLUMNS = (schema.LETTER_ID, schema.RECEIVED_AT, schema.ADDRESSEE, schema.PETITIONER_KEY,
                  schema.CLEAN_TEXT, schema.TOKENS)
BODY_HASH, PLACES, OTHERS = "body_hash", "places", "others"
LINK_COLUMNS = ("letter_a", "letter_b", "relation", "score", "shared_names", "char_similarity",
                "tfidf_cosine", "days_apart", "same_petitioner")
EXACT, MULTI, RESEND, REPEAT, SAME = schema.RELATIONS
NO_LINK = ""
PERFORMANCE_KEYS = ("processes", "chunk_size")  # change speed, not results


def config_hash(settings):
    """Hash of the dedupe settings that change results (and of the index format)."""
    values = {k: v for k, v in dataclasses.asdict(settings).items() if k not in PERFORMANCE_KEYS}
    payload = json.dumps([FORMAT_VERSION, values], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


# --- features -------------------------------------------------------------------------------

def comparison_texts(clean_texts, min_body_chars=20):
    """The text letters are compared on: the body (``clean_text`` after its title line),
    whitespace removed, or title + body when the body is shorter than ``min_body_chars``."""
    out = []
    for text in clean_texts:
        title, _, body = text.partition("\n")
        body = "".join(body.split())
        out.append(body if len(body) >= min_body_chars else "".join(title.split()) + body)
    return out


def _csr(lists_of_arrays):
    """Concatenate per-row arrays into a CSR layout (values, pointers)."""
    lengths = np.fromiter(map(len, lists_of_arrays), dtype=np.int64, count=len(lists_of_arrays))
    values = np.concatenate(lists_of_arrays) if len(lists_of_arrays) else np.zeros(0, dtype=np.uint64)
    return values.astype(np.uint64), np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)


def top_terms(vectors, count):
    """The ``count`` highest-weighted term columns of each row of a CSR matrix, as a CSR
    layout (uint64 values, pointers)."""
    lengths = np.diff(vectors.indptr)
    rows = np.repeat(np.arange(vectors.shape[0]), lengths)
    order = np.lexsort((vectors.indices, -vectors.data, rows))  # ties broken by column: deterministic
    rank = np.arange(len(order)) - np.repeat(vectors.indptr[:-1], lengths)
    chosen = order[rank < count]
    kept = np.minimum(lengths, count)
    return vectors.indices[chosen].astype(np.uint64), np.concatenate(([0], np.cumsum(kept))).astype(np.int64)


def _name_hashes(names_per_letter):
    """uint64 hashes of each letter's names, as a CSR layout."""
    flat = [name for names in names_per_letter for name in names]
    hashes = text_hashes(flat)
    lengths = np.fromiter(map(len, names_per_letter), dtype=np.int64, count=len(names_per_letter))
    return hashes, np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)


class Featurizer:
    """Compute the features the index keeps for each letter.

    Parameters
    ----------
    minhasher : MinHasher
    bands, rows : int
        LSH banding of the signatures.
    vectorizer : TermVectorizer
    names : NameExtractor
    min_body_chars, compare_chars : int
        See ``comparison_texts``; texts are cut to ``compare_chars`` for shingling and
        character similarity (the hash of the exact text uses all of it).
    block_terms : int
        Highest-weighted TF-IDF terms of a letter that, with its place names, make its
        same-matter blocking keys.
    """

    def __init__(self, minhasher, bands, rows, vectorizer, names, min_body_chars=20, compare_chars=3000,
                 block_terms=5):
        self.minhasher, self.bands, self.rows = minhasher, bands, rows
        self.vectorizer, self.names, self.block_terms = vectorizer, names, block_terms
        self.min_body_chars, self.compare_chars = min_body_chars, compare_chars

    @classmethod
    def from_config(cls, config):
        c = config.dedupe
        bands, rows = lsh_params(c.lsh_threshold, c.num_perm)
        vectorizer = TermVectorizer(c.tfidf_features, c.top_terms)
        names = NameExtractor.from_config(config, vectorizer.word_idf)
        return cls(MinHasher(c.num_perm, c.shingle_size, c.seed), bands, rows, vectorizer, names,
                   c.min_body_chars, c.compare_chars, c.block_terms)

    def arrays(self, clean_texts, tokens, days=None):
        """Features of one chunk of letters: (dict of arrays, places, others). ``days``: the
        letters' dates (datetime64[D], NaT when unknown), or None."""
        full = comparison_texts(clean_texts, self.min_body_chars)
        texts = [text[:self.compare_chars] for text in full]
        days = [None] * len(clean_texts) if days is None else [None if np.isnat(d) else d for d in days]
        found = [self.names.extract(clean, words, day) for clean, words, day in zip(clean_texts, tokens, days)]
        places = [p for p, _ in found]
        signatures = self.minhasher.signatures(texts)
        vectors = self.vectorizer.transform(tokens)
        encoded = [text.encode("utf-8") for text in texts]
        text_ptr = np.concatenate(([0], np.cumsum(list(map(len, encoded))))).astype(np.int64)
        names, names_ptr = _name_hashes(places)  # the evidence: masked people and terms are too common
        place_hashes, places_ptr = _name_hashes(places)
        terms, terms_ptr = top_terms(vectors, self.block_terms)
        arrays = {
            BODY_HASH: text_hashes(full),
            "bands": band_keys(signatures, self.bands, self.rows),
            "names": names, "names_ptr": names_ptr, "places": place_hashes, "places_ptr": places_ptr,
            "terms": terms, "terms_ptr": terms_ptr,
            "vec_data": vectors.data.astype(np.float32), "vec_indices": vectors.indices.astype(np.int32),
            "vec_ptr": vectors.indptr.astype(np.int64),
            "text": np.frombuffer(b"".join(encoded), dtype=np.uint8), "text_ptr": text_ptr,
        }
        return arrays, ["|".join(p) for p in places], ["|".join(o) for _, o in found]


_worker_featurizer = None


def _featurize_chunk(chunk):
    return _worker_featurizer.arrays(*chunk)


def _concat_chunks(parts):
    """Join chunk arrays; CSR pointers are shifted by the values before them."""
    out = {}
    for name in parts[0]:
        if name.endswith("_ptr"):
            offsets = np.cumsum([0] + [p[name][-1] for p in parts[:-1]])
            out[name] = np.concatenate([parts[0][name][:1]] + [p[name][1:] + off for p, off in zip(parts, offsets)])
        else:
            out[name] = np.concatenate([p[name] for p in parts])
    return out


def featurize(letters, featurizer, processes=1, chunk_size=20000, progress=None):
    """Features of ``letters`` (a DataFrame with ``NEEDED_COLUMNS`` and optionally ``topics``).

    Returns a ``Batch`` whose ``letters`` frame holds the index columns. ``progress``, if
    given, is called with the number of letters finished after each chunk.
    """
    global _worker_featurizer
    texts, tokens = letters[schema.CLEAN_TEXT].tolist(), letters[schema.TOKENS].tolist()
    days = pd.to_datetime(letters[schema.RECEIVED_AT]).to_numpy(dtype="datetime64[D]")
    chunks = [(texts[i:i + chunk_size], tokens[i:i + chunk_size], days[i:i + chunk_size])
              for i in range(0, len(texts), chunk_size)]
    results = []
    if processes <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            results.append(featurizer.arrays(*chunk))
            if progress:
                progress(len(chunk[0]))
    else:
        _worker_featurizer = featurizer  # forked workers inherit it, IDF table included
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            for chunk, result in zip(chunks, pool.imap(_featurize_chunk, chunks)):
                results.append(result)
                if progress:
                    progress(len(chunk[0]))
    if not results:
        results = [featurizer.arrays([], [])]
    arrays = _concat_chunks([r[0] for r in results])
    frame = pd.DataFrame({
        schema.LETTER_ID: letters[schema.LETTER_ID].astype(str).to_numpy(),
        schema.RECEIVED_AT: pd.to_datetime(letters[schema.RECEIVED_AT]).astype("datetime64[ns]").to_numpy(),
        schema.ADDRESSEE: letters[schema.ADDRESSEE].fillna("").astype(str).to_numpy(),
        schema.PETITIONER_KEY: letters[schema.PETITIONER_KEY].fillna("").astype(str).to_numpy(),
        BODY_HASH: arrays.pop(BODY_HASH),
        PLACES: np.array([p for r in results for p in r[1]], dtype=object),
        OTHERS: np.array([o for r in results for o in r[2]], dtype=object),
        schema.TOPICS: (letters[schema.TOPICS].fillna("").astype(str).to_numpy()
                        if schema.TOPICS in letters else ""),
    })
    return Batch(frame, arrays)


# --- the letters being matched: the index's, then the night's ---------------------------------

class Pool:
    """The index letters (positions 0..H-1) followed by the new ones (H..H+N-1)."""

    def __init__(self, index, batch, n_features):
        self.index, self.batch, self.n_features = index, batch, n_features
        self.history = len(index)
        frames = [index.letters, batch.letters] if len(index) else [batch.letters]
        self.letters = pd.concat(frames, ignore_index=True)
        self.is_new = np.arange(len(self.letters)) >= self.history
        dates = pd.to_datetime(self.letters[schema.RECEIVED_AT])
        self.days = ((dates - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400).to_numpy(dtype=float)
        self.keys = _codes(self.letters[schema.PETITIONER_KEY])
        self.addressees = _codes(self.letters[schema.ADDRESSEE])
        self.bodies = pd.factorize(self.letters[BODY_HASH])[0]
        ids = self.letters[schema.LETTER_ID].to_numpy(dtype=str)
        self.order = np.lexsort((ids, np.nan_to_num(self.days, nan=np.inf)))  # earliest first
        self.rank = np.empty(len(ids), dtype=np.int64)
        self.rank[self.order] = np.arange(len(ids))

    def csr(self, name):
        new = (self.batch.arrays[name], self.batch.arrays[f"{name}_ptr"])
        if not self.history:
            return new
        old_values, old_ptr = self.index.csr(name)
        return (np.concatenate((old_values, new[0])),
                np.concatenate((old_ptr, new[1][1:] + old_ptr[-1])))

    def bands(self, positions):
        """Band keys of ``positions`` (sorted), history rows read from the index."""
        old = positions[positions < self.history]
        parts = [np.asarray(self.index.array("bands")[old])] if len(old) else []
        parts.append(self.batch.arrays["bands"][positions[positions >= self.history] - self.history])
        return np.concatenate(parts)

    def vectors(self, positions):
        """TF-IDF rows of sorted ``positions``."""
        import scipy.sparse as sp
        old, new = positions[positions < self.history], positions[positions >= self.history] - self.history
        parts = [self.index.vectors(old, self.n_features)] if len(old) else []
        parts.append(self.batch.vectors(new, self.n_features))
        return sp.vstack(parts, format="csr")

    def texts(self, positions):
        """Comparison texts of sorted ``positions``."""
        old, new = positions[positions < self.history], positions[positions >= self.history] - self.history
        return (self.index.texts(old) if len(old) else []) + self.batch.texts(new)


def _codes(values):
    """Integer codes of strings; -1 for the empty string (unknown)."""
    codes, uniques = pd.factorize(values.fillna("").astype(str))
    if "" in set(uniques):
        codes = np.where(codes == list(uniques).index(""), -1, codes)
    return codes.astype(np.int64)


# --- candidates -----------------------------------------------------------------------------

def _unique_pairs(first, second, total):
    a, b = np.minimum(first, second), np.maximum(first, second)
    keep = a != b
    code = np.unique(a[keep] * total + b[keep])
    return code // total, code % total


def block_pairs(labels, positions, days, new, window):
    """Pairs of letters (global positions) whose entries share a label, at least one of
    them new, at most ``window`` days apart; an undated letter pairs with its whole block."""
    dated = ~np.isnan(days)
    whole = np.floor(np.nan_to_num(days)).astype(np.int64)
    fresh, old = np.flatnonzero(new & dated), np.flatnonzero(~new & dated)
    firsts, seconds = [], []

    def add(i, j, left, right):
        firsts.append(positions[left[i]])
        seconds.append(positions[right[j]])

    i, j = pairs_within_window(labels[fresh], whole[fresh], window)
    add(i, j, fresh, fresh)
    add(*join_pairs(labels[fresh], labels[old], whole[fresh], whole[old], window), fresh, old)
    undated_new, undated_old = np.flatnonzero(new & ~dated), np.flatnonzero(~new & ~dated)
    add(*join_pairs(labels[undated_new], labels), undated_new, np.arange(len(labels)))
    add(*join_pairs(labels[fresh], labels[undated_old]), fresh, undated_old)
    return np.concatenate(firsts), np.concatenate(seconds)


def candidate_pairs(pool, settings):
    """Every pair worth scoring (global positions ``a < b``, at least one new letter)."""
    total, new = len(pool.letters), pool.is_new
    firsts, seconds = [], []
    # same text: each new letter to the earliest other letter with that text
    new_bodies = np.unique(pool.bodies[new])
    members = np.flatnonzero(np.isin(pool.bodies, new_bodies))
    members = members[np.lexsort((pool.rank[members], pool.bodies[members]))]
    _, starts, sizes = np.unique(pool.bodies[members], return_index=True, return_counts=True)
    group = np.repeat(np.arange(len(starts)), sizes)
    earliest = members[starts[group]]
    second = members[np.minimum(starts[group] + 1, len(members) - 1)]
    partner = np.where(members == earliest, np.where(sizes[group] > 1, second, members), earliest)
    chosen = new[members]
    firsts.append(members[chosen])
    seconds.append(partner[chosen])
    # LSH: distinct texts sharing a band, expanded to their letters
    body_a, body_b = _lsh_body_pairs(pool)
    p1, letter_a = join_pairs(body_a, pool.bodies)
    p2, letter_b = join_pairs(body_b[p1], pool.bodies)
    firsts.append(letter_a[p2])
    seconds.append(letter_b)
    # same petitioner; shared place names
    known = np.flatnonzero(pool.keys >= 0)
    relevant = known[np.isin(pool.keys[known], pool.keys[new & (pool.keys >= 0)])]
    pairs = block_pairs(pool.keys[relevant], relevant, pool.days[relevant], new[relevant],
                        settings.repeat_window_days)
    firsts.append(pairs[0])
    seconds.append(pairs[1])
    owner, labels = matter_keys(pool)
    keep = np.isin(labels, labels[new[owner]])
    # a key shared by more than max_block letters is generic (a township and 问题), not a
    # matter; blocks that large would also make the pairs explode
    values, counts = np.unique(labels[keep], return_counts=True)
    keep &= ~np.isin(labels, values[counts > settings.max_block])
    pairs = block_pairs(labels[keep], owner[keep], pool.days[owner[keep]], new[owner[keep]],
                        settings.same_matter_window_days)
    firsts.append(pairs[0])
    seconds.append(pairs[1])
    a, b = _unique_pairs(np.concatenate(firsts), np.concatenate(seconds), total)
    keep = new[a] | new[b]
    return a[keep], b[keep]


def matter_keys(pool):
    """Same-matter blocking keys of each letter: every (specific name, top TF-IDF term), every
    pair of its top terms and every pair of its specific names, so a pair is a candidate
    when the letters share a name and a distinctive word, two distinctive words or two
    names (a village's letters about other matters stay apart). Returns (owner position, key)."""
    places, place_ptr = pool.csr("places")
    terms, term_ptr = pool.csr("terms")
    total = len(pool.letters)
    place_owner = np.repeat(np.arange(total), np.diff(place_ptr))
    term_owner = np.repeat(np.arange(total), np.diff(term_ptr))
    i, j = join_pairs(place_owner, term_owner)
    place_keys = mix64(places[i] ^ mix64(terms[j] + np.uint64(1)))
    k, m = join_pairs(term_owner, term_owner)
    k, m = k[terms[k] < terms[m]], m[terms[k] < terms[m]]  # each unordered pair of top terms once
    term_keys = mix64(mix64(terms[k] + np.uint64(2)) ^ terms[m])
    n, q = join_pairs(place_owner, place_owner)
    n, q = n[places[n] < places[q]], q[places[n] < places[q]]  # each unordered pair of names once
    name_keys = mix64(mix64(places[n] + np.uint64(3)) ^ places[q])
    return (np.concatenate((place_owner[i], term_owner[k], place_owner[n])),
            np.concatenate((place_keys, term_keys, name_keys)).view(np.int64))


def _lsh_body_pairs(pool):
    """Pairs of distinct texts (body codes) that share an LSH band, one of them new."""
    positions = np.arange(len(pool.letters))
    _, first = np.unique(pool.bodies, return_index=True)  # one letter per distinct text
    has_new = np.zeros(pool.bodies.max() + 1 if len(pool.bodies) else 0, dtype=bool)
    has_new[pool.bodies[pool.is_new]] = True
    fresh = np.sort(np.unique(pool.bodies[pool.is_new], return_index=True)[1] + pool.history)
    old = np.sort(first[~has_new[pool.bodies[first]] & (first < pool.history)])
    fresh_keys, old_keys = pool.bands(positions[fresh]), pool.bands(positions[old])
    n_bands = fresh_keys.shape[1]
    fresh_flat = fresh_keys.ravel().view(np.int64)
    fresh_owner = np.repeat(fresh, n_bands)
    i, j = pairs_within_window(fresh_flat)
    a, b = [fresh_owner[i]], [fresh_owner[j]]
    if len(old):
        i, j = join_pairs(fresh_flat, old_keys.ravel().view(np.int64))
        a.append(fresh_owner[i])
        b.append(np.repeat(old, n_bands)[j])
    a, b = pool.bodies[np.concatenate(a)], pool.bodies[np.concatenate(b)]
    return _unique_pairs(a, b, len(pool.letters))


# --- scores and relations -----------------------------------------------------------------------

def char_similarity(pool, a, b, needed, cutoff=0.0, workers=1):
    """rapidfuzz ratio (0-1) of the comparison texts where ``needed`` (NaN elsewhere; 1 for
    the same text), computed once per distinct text pair. Ratios under ``cutoff`` may be
    returned as 0 (rapidfuzz stops early)."""
    body_a, body_b = pool.bodies[a], pool.bodies[b]
    same = body_a == body_b
    similarity = np.where(same, 1.0, np.nan)
    todo = needed & ~same
    if todo.any():
        total = pool.bodies.max() + 1
        code, inverse = np.unique(body_a[todo] * total + body_b[todo], return_inverse=True)
        rep = np.full(total, -1, dtype=np.int64)
        rep[pool.bodies[::-1]] = np.arange(len(pool.bodies))[::-1]  # first letter with each text
        left, right = rep[code // total], rep[code % total]
        involved = np.unique(np.concatenate((left, right)))
        lookup = dict(zip(involved.tolist(), pool.texts(involved)))
        scores = cpdist([lookup[p] for p in left.tolist()], [lookup[p] for p in right.tolist()],
                        scorer=fuzz.ratio, score_cutoff=cutoff * 100, workers=workers, dtype=np.float32)
        similarity[todo] = scores[inverse] / 100.0
    return similarity


def tfidf_cosine(pool, a, b, chunk=500_000):
    """Cosine of the letters' TF-IDF vectors (rows are L2-normalised)."""
    involved = np.unique(np.concatenate((a, b)))
    vectors = pool.vectors(involved)
    ia, ib = np.searchsorted(involved, a), np.searchsorted(involved, b)
    out = np.empty(len(a))
    for start in range(0, len(a), chunk):
        end = start + chunk
        out[start:end] = np.asarray(vectors[ia[start:end]].multiply(vectors[ib[start:end]]).sum(axis=1)).ravel()
    return out


def shared_name_counts(pool, a, b):
    """How many names (places, people, organisations) each pair of letters shares."""
    values, pointers = pool.csr("names")
    names_a, offsets = csr_rows(values, pointers, a)
    pair = np.repeat(np.arange(len(a)), np.diff(offsets))
    involved = np.unique(b)
    names_b, offsets_b = csr_rows(values, pointers, involved)
    owner = np.repeat(involved, np.diff(offsets_b)).astype(np.uint64)
    table = np.sort((owner << np.uint64(40)) | (names_b >> np.uint64(24)))
    query = (b[pair].astype(np.uint64) << np.uint64(40)) | (names_a >> np.uint64(24))
    found = np.searchsorted(table, query)
    hit = (found < len(table)) & (table[np.minimum(found, len(table) - 1)] == query)
    return np.bincount(pair[hit], minlength=len(a))


def relations(near, same_text, different_addressee, same_petitioner, days, matter, shared, cosine, settings):
    """The relation of each pair (``NO_LINK`` when none applies); arrays of equal length.

    ``days`` is NaN when a letter has no date: every window then holds.
    """
    def within(window):
        return np.isnan(days) | (days <= window)

    rules = [
        (near & different_addressee & within(settings.multi_addressed_window_days), MULTI),
        (same_text, EXACT),
        (near & ~different_addressee, RESEND),
        (same_petitioner & within(settings.repeat_window_days) & (near | (matter >= settings.repeat_min_score)),
         REPEAT),
        (near | (within(settings.same_matter_window_days)
                 & (((shared >= 2) & (cosine >= settings.same_matter_two_names_cosine))
                    | ((shared == 1) & (cosine >= settings.same_matter_one_name_cosine)))), SAME),
    ]
    return np.select([rule for rule, _ in rules], [name for _, name in rules], default=NO_LINK)


def score_pairs(pool, a, b, settings, workers=1):
    """Scores and relation of candidate pairs; returns the linked ones as a links frame."""
    cosine = tfidf_cosine(pool, a, b)
    # near-same texts share their words: below near_min_cosine the ratio cannot reach
    # near_same_similarity in practice, and rapidfuzz is the costly step
    similarity = char_similarity(pool, a, b, cosine >= settings.near_min_cosine,
                                 settings.near_same_similarity, workers)
    shared = shared_name_counts(pool, a, b)
    days = np.abs(pool.days[a] - pool.days[b])
    same_text = pool.bodies[a] == pool.bodies[b]
    near = same_text | (similarity >= settings.near_same_similarity)
    addressee_a, addressee_b = pool.addressees[a], pool.addressees[b]
    different_addressee = (addressee_a >= 0) & (addressee_b >= 0) & (addressee_a != addressee_b)
    same_petitioner = (pool.keys[a] >= 0) & (pool.keys[a] == pool.keys[b])
    matter = cosine + settings.name_weight * np.minimum(shared, settings.max_names_counted)
    relation = relations(near, same_text, different_addressee, same_petitioner, days, matter, shared, cosine,
                         settings)
    linked = relation != NO_LINK
    a, b = a[linked], b[linked]
    similarity = char_similarity(pool, a, b, np.ones(len(a), dtype=bool), workers=workers)  # exact, for evidence
    earlier = pool.rank[a] <= pool.rank[b]
    first, second = np.where(earlier, a, b), np.where(earlier, b, a)
    ids = pool.letters[schema.LETTER_ID].to_numpy()
    places, others = pool.letters[PLACES].to_numpy(dtype=object), pool.letters[OTHERS].to_numpy(dtype=object)

    def names(i):
        return set(places[i].split("|")) | set(others[i].split("|"))
    near_relation = np.isin(relation[linked], [EXACT, MULTI, RESEND])
    return pd.DataFrame({
        "letter_a": ids[first], "letter_b": ids[second], "relation": relation[linked],
        "score": np.round(np.where(near_relation, similarity, np.minimum(matter[linked], 1.0)), 3),
        "shared_names": ["、".join(sorted((names(x) & names(y)) - {""}))
                         for x, y in zip(first.tolist(), second.tolist())],
        "char_similarity": np.round(similarity, 3),
        "tfidf_cosine": np.round(cosine[linked], 3),
        "days_apart": np.round(days[linked], 1),
        "same_petitioner": same_petitioner[linked],
    }, columns=list(LINK_COLUMNS))


# --- cases ---------------------------------------------------------------------------------------

def assign_cases(letters, links):
    """Cases of ``letters`` (every indexed letter) from ``links`` (every link).

    Returns a DataFrame indexed like ``letters`` with ``case_id``, ``duplicate_of`` (the
    earliest letter it is linked to, '' for the case's first letter) and ``relation``.
    """
    ids = letters[schema.LETTER_ID].to_numpy(dtype=str)
    days = pd.to_datetime(letters[schema.RECEIVED_AT]).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    days = np.where(pd.isna(letters[schema.RECEIVED_AT]).to_numpy(), np.iinfo(np.int64).max, days)
    order = np.lexsort((ids, days))
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))
    position = pd.Index(ids)
    a = position.get_indexer(links["letter_a"]) if len(links) else np.zeros(0, dtype=np.int64)
    b = position.get_indexer(links["letter_b"]) if len(links) else np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(ids), len(ids)))
    _, component = connected_components(graph, directed=False)
    first_rank = np.full(component.max() + 1 if len(ids) else 0, np.iinfo(np.int64).max)
    np.minimum.at(first_rank, component, rank)
    first = order[first_rank[component]]
    # every link seen from both ends; keep each letter's earliest neighbour
    me, other = np.concatenate((a, b)), np.concatenate((b, a))
    relation = np.concatenate((links["relation"].to_numpy(dtype=str),) * 2) if len(links) else np.zeros(0, dtype=str)
    pick = np.lexsort((rank[other], me))
    me, other, relation = me[pick], other[pick], relation[pick]
    head = np.unique(me, return_index=True)[1]
    duplicate_of = np.full(len(ids), "", dtype=object)
    kind = np.full(len(ids), "", dtype=object)
    duplicate_of[me[head]], kind[me[head]] = ids[other[head]], relation[head]
    is_first = first == np.arange(len(ids))
    duplicate_of[is_first], kind[is_first] = "", ""
    return pd.DataFrame({schema.CASE_ID: ids[first], schema.DUPLICATE_OF: duplicate_of,
                         schema.RELATION: kind}, index=letters.index)


def case_table(letters, cases, in_run, before_run):
    """One row per case that holds one of the run's letters.

    ``letters`` are every indexed letter, ``cases`` their ``assign_cases`` frame,
    ``in_run``/``before_run`` boolean arrays: the letter is in this run / was indexed before it.
    """
    frame = letters[[schema.LETTER_ID, schema.RECEIVED_AT, schema.PETITIONER_KEY, schema.ADDRESSEE,
                     schema.TOPICS]].assign(**{schema.CASE_ID: cases[schema.CASE_ID].to_numpy(),
                                               "in_run": in_run, "before": before_run})
    touched = frame.loc[frame["in_run"], schema.CASE_ID].unique()
    frame = frame[frame[schema.CASE_ID].isin(touched)]
    frame = frame.sort_values([schema.CASE_ID, schema.RECEIVED_AT, schema.LETTER_ID], na_position="last")

    def distinct(values):
        """(case, value) pairs of the non-empty values, each once; ``values`` is indexed
        like ``frame`` (an exploded column repeats index labels)."""
        pairs = pd.DataFrame({"case": frame[schema.CASE_ID].reindex(values.index).to_numpy(),
                              "value": values.to_numpy()})
        return pairs[pairs["value"].notna() & (pairs["value"] != "")].drop_duplicates()

    def joined(values):
        return distinct(values).groupby("case", sort=False)["value"].agg("|".join)

    grouped = frame.groupby(schema.CASE_ID, sort=False)
    table = pd.DataFrame({
        "letter_ids": grouped[schema.LETTER_ID].agg("|".join),
        "first_date": grouped[schema.RECEIVED_AT].min().dt.strftime("%Y-%m-%d"),
        "last_date": grouped[schema.RECEIVED_AT].max().dt.strftime("%Y-%m-%d"),
        "letters": grouped.size(),
        "petitioners": distinct(frame[schema.PETITIONER_KEY]).groupby("case", sort=False).size(),
        "addressees": joined(frame[schema.ADDRESSEE]),
        "topics": joined(frame[schema.TOPICS].str.split("|").explode()),
        "run_letters": grouped["in_run"].sum(),
        "status": grouped["before"].any().map({True: "continues", False: "new"}),
    })
    table = table.fillna({"first_date": "", "last_date": "", "petitioners": 0, "addressees": "", "topics": ""})
    table["petitioners"] = table["petitioners"].astype(int)
    return table.rename_axis(schema.CASE_ID).reset_index()


# --- the stage ----------------------------------------------------------------------------------

def read_letters(run):
    """The run's letters from its latest stage output (classified, else segmented)."""
    stage_name = "classify" if run.output_path("classify").exists() else "segment"
    path = run.output_path(stage_name)
    if not path.exists():
        raise PetitionError(f"{run.path}: no {path.name}; run `petition segment --run {run.path}` first")
    try:
        available = set(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise PetitionError(f"{path}: unreadable Parquet ({exc}); re-run `petition {stage_name}`") from exc
    missing = [c for c in NEEDED_COLUMNS if c not in available]
    if missing:
        raise PetitionError(f"{path}: missing columns {missing}; re-run normalize and segment")
    columns = list(NEEDED_COLUMNS) + ([schema.TOPICS] if schema.TOPICS in available else [])
    return stage_name, run.read(stage_name, columns=columns)


def write_deduped(source, target, keep, cases):
    """Copy ``source`` Parquet rows where ``keep`` to ``target``, adding the case columns,
    batch by batch (a million letters' text need not be in memory twice)."""
    reader = pq.ParquetFile(source)
    start = 0
    with atomic_path(target) as tmp:
        writer = None
        for batch in reader.iter_batches(batch_size=65536):
            table = pa.Table.from_batches([batch])
            mask = keep[start:start + len(table)]
            rows = np.flatnonzero(mask)
            table = table.take(rows)
            for column in (schema.CASE_ID, schema.DUPLICATE_OF, schema.RELATION):
                values = cases[column].to_numpy()[start:start + len(mask)][rows]
                table = table.append_column(column, pa.array(values.astype(str), type=pa.string()))
            start += len(mask)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
        if writer is None:  # no rows: write the schema with the new columns
            empty = reader.schema_arrow.empty_table()
            for column in (schema.CASE_ID, schema.DUPLICATE_OF, schema.RELATION):
                empty = empty.append_column(column, pa.array([], type=pa.string()))
            pq.write_table(empty, tmp)
        else:
            writer.close()


def dedupe_run(run, index, config, processes=None, progress=None):
    """Match the run's letters against ``index`` and each other, add them to it, write the
    outputs. Returns (rows in, rows out, quarantine records, summary dict)."""
    settings = config.dedupe
    processes = processes or settings.processes
    stage_name, letters = read_letters(run)
    letters = letters.reset_index(drop=True)
    indexed = pd.Index(index.letters[schema.LETTER_ID]) if len(index) else pd.Index([])
    known = letters[schema.LETTER_ID].astype(str).isin(indexed).to_numpy()
    featurizer = Featurizer.from_config(config)
    batch = featurize(letters[~known], featurizer, processes, settings.chunk_size, progress)
    # a known id must come with the text it was indexed with
    quarantine = []
    if known.any():
        again = letters[known]
        hashes = text_hashes(comparison_texts(again[schema.CLEAN_TEXT].tolist(), settings.min_body_chars))
        stored = index.letters.set_index(schema.LETTER_ID)[BODY_HASH]
        changed = stored.loc[again[schema.LETTER_ID].astype(str)].to_numpy() != hashes
        quarantine = [{schema.SOURCE_FILE: str(run.output_path(stage_name)), schema.SOURCE_ROW: row + 1,
                       "column": schema.LETTER_ID, "raw": letter_id,
                       "reason": "letter_id already in the dedupe index with another text"}
                      for row, letter_id in zip(np.flatnonzero(known)[changed].tolist(),
                                                again[schema.LETTER_ID].astype(str)[changed])]
    pool = Pool(index, batch, settings.tfidf_features)
    a, b = candidate_pairs(pool, settings) if len(batch) else (np.zeros(0, dtype=np.int64),) * 2
    links = score_pairs(pool, a, b, settings, workers=processes)
    history_size = len(index)
    index.add(batch, links)
    everything = index.letters if len(index) else batch.letters  # the latter has the columns
    all_links = index.links if len(index.links) else links
    cases = assign_cases(everything, all_links)
    run_ids = letters[schema.LETTER_ID].astype(str)
    bad = run_ids.isin({q["raw"] for q in quarantine}).to_numpy()
    position = pd.Index(everything[schema.LETTER_ID]).get_indexer(run_ids)
    run_cases = cases.iloc[np.where(position >= 0, position, 0)].reset_index(drop=True)
    write_deduped(run.output_path(stage_name), run.output_path("dedupe"), ~bad, run_cases)
    in_run = np.zeros(len(everything), dtype=bool)
    in_run[position[~bad]] = True
    before = np.arange(len(everything)) < history_size
    table = case_table(everything, cases, in_run, before)
    write_csv(table, run.path / "cases.csv")
    run_links = all_links[all_links["letter_a"].isin(run_ids[~bad]) | all_links["letter_b"].isin(run_ids[~bad])]
    write_csv(run_links.reset_index(drop=True), run.path / "links.csv")
    summary = summarize(letters[~bad], run_cases[~bad], links, table, len(batch), index, config)
    write_json(summary, run.path / "summary.json")
    return len(letters), int((~bad).sum()), quarantine, summary


def summarize(letters, run_cases, new_links, table, added, index, config):
    """The figures printed and saved in summary.json."""
    dated = letters[schema.RECEIVED_AT].notna()
    no_identity = (letters[schema.PETITIONER_KEY].fillna("") == "").sum()
    windows = ("on" if dated.all() else
               "off: no letter has a date" if not dated.any() else
               f"off for the {int((~dated).sum())} letters without a date")
    relation_counts = run_cases[schema.RELATION].replace("", "first letter of its case").value_counts()
    return {
        "letters (件次)": len(letters),
        "unique matters (纯件数)": int(run_cases[schema.CASE_ID].nunique()),
        "letters added to the index": added,
        "letters already in the index": len(letters) - added,
        "letters by relation to an earlier letter": {k: int(v) for k, v in relation_counts.items()},
        "links found in this run": {r: int((new_links["relation"] == r).sum()) for r in schema.RELATIONS},
        "cases new / continuing": {"new": int((table["status"] == "new").sum()),
                                   "continues": int((table["status"] == "continues").sum())},
        "time windows": windows,
        "letters without petitioner identity (matched on content only)": int(no_identity),
        "index": {"letters": len(index), "links": len(index.links), "config_hash": config_hash(config.dedupe)},
    }


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "dedupe", help="link copies, 一信多投, repeat petitions and same-matter letters into cases",
        description="Read classified.parquet (else segmented.parquet), match it against the index of "
                    "earlier letters, add it there; write deduped.parquet, links.csv, cases.csv, summary.json.")
    parser.add_argument("--run", required=True, help="run directory")
    parser.add_argument("--index", help="dedupe index directory (default: DATA_DIR/index)")
    parser.add_argument("--rebuild", action="store_true",
                        help="start an empty index when the existing one is damaged or was built "
                             "with other settings (the old one is moved aside)")
    parser.add_argument("--processes", type=int, help="worker processes (default: configuration)")
    parser.set_defaults(func=run_cli)


def run_cli(args, config):
    from tqdm import tqdm

    from pipeline.rundir import RunDir, stage

    if args.processes is not None and args.processes < 1:
        raise PetitionError(f"--processes must be at least 1, got {args.processes}")
    run = RunDir(args.run)
    index_dir = args.index or config.paths.data_dir / "index"
    index = DedupeIndex.open(index_dir, config_hash(config.dedupe), rebuild=args.rebuild)
    with stage(run, "dedupe") as result, tqdm(desc="dedupe features", unit="letter", disable=None) as bar:
        rows_in, rows_out, quarantine, summary = dedupe_run(run, index, config, args.processes, bar.update)
        run.set_quarantine("dedupe", quarantine)
        result.rows_in, result.rows_out, result.quarantined = rows_in, rows_out, len(quarantine)
        result.notes = {key: (json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value)
                        for key, value in summary.items()}
