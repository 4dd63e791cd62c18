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

A blocking key (band, petitioner, same-matter key) held by more letters than its ``max_``
setting is skipped as too generic. Candidates are listed by ranges of their later letter
(``Blocks``, ``Candidates``) and scored ``chunk_pairs`` at a time in threads, so memory
grows with the letters, not with their pairs.

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
import collections
import dataclasses
import hashlib
import json
import multiprocessing
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp
from rapidfuzz import fuzz
from rapidfuzz.process import cpdist
from scipy.sparse.csgraph import connected_components

from pipeline import schema
from pipeline.dedupe_index import FORMAT_VERSION, Batch, DedupeIndex, csr_rows
from pipeline.errors import PetitionError
from pipeline.matter import NameExtractor, TermVectorizer, top_entries
from pipeline.minhash import MinHasher, band_keys, index_ranges, join_pairs, lsh_params, mix64, text_hashes
from pipeline.parallel import release_memory
from pipeline.rundir import atomic_path, parquet_batches, write_csv, write_json

NEEDED_COLUMNS = (schema.LETTER_ID, schema.RECEIVED_AT, schema.ADDRESSEE, schema.PETITIONER_KEY,
                  schema.CLEAN_TEXT, schema.TOKENS)
BODY_HASH, PLACES, OTHERS = "body_hash", "places", "others"
LINK_COLUMNS = ("letter_a", "letter_b", "relation", "score", "shared_names", "char_similarity",
                "tfidf_cosine", "days_apart", "same_petitioner")
EXACT, MULTI, RESEND, REPEAT, SAME = schema.RELATIONS
NO_LINK = ""
PERFORMANCE_KEYS = ("processes", "chunk_size", "chunk_pairs")  # change speed, not results


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
    """The ``count`` highest-weighted term columns of each row of a CSR matrix of
    non-negative weights, as a CSR layout (uint64 values, pointers); ties go to the lower
    column (the matrix's indices are sorted in place first)."""
    vectors.sort_indices()
    kept = np.minimum(np.diff(vectors.indptr), count)
    return (vectors.indices[top_entries(vectors, count)].astype(np.uint64),
            np.concatenate(([0], np.cumsum(kept))).astype(np.int64))


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
        # specific names: the evidence and blocking keys (masked people and terms are too common)
        names, names_ptr = _name_hashes(places)
        terms, terms_ptr = top_terms(vectors, self.block_terms)
        arrays = {
            BODY_HASH: text_hashes(full),
            "bands": band_keys(signatures, self.bands, self.rows),
            "names": names, "names_ptr": names_ptr,
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
    """Join chunk arrays, array by array, emptying ``parts`` as it goes (the features of a
    million letters are not held twice); CSR pointers are shifted by the values before them."""
    out = {}
    for name in list(parts[0]):
        pieces = [p.pop(name) for p in parts]
        if name.endswith("_ptr"):
            offsets = np.cumsum([0] + [piece[-1] for piece in pieces[:-1]])
            pieces = [pieces[0][:1]] + [piece[1:] + offset for piece, offset in zip(pieces, offsets)]
        out[name] = np.concatenate(pieces)
        del pieces
    return out


def _in_order(tasks, run, window):
    """Results of ``run(task)`` for ``tasks`` in order, at most ``window`` submitted ahead
    (``run`` returns an AsyncResult), so a stream of tasks is never all in memory."""
    pending = collections.deque()
    for task in tasks:
        pending.append(run(task))
        if len(pending) >= window:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def featurize(letters, chunks, featurizer, processes=1, chunk_size=20000, progress=None):
    """Features of ``letters`` (a DataFrame with ``NEEDED_COLUMNS`` but the text ones, and
    optionally ``topics``) whose texts come in ``chunks``: (clean_texts, tokens) lists of at
    most ``chunk_size`` letters in the order of ``letters``, read as they are needed.

    Returns a ``Batch`` whose ``letters`` frame holds the index columns. ``progress``, if
    given, is called with the number of letters finished after each chunk.
    """
    global _worker_featurizer
    days = pd.to_datetime(letters[schema.RECEIVED_AT]).to_numpy(dtype="datetime64[D]")

    def with_days(chunks):
        done = 0
        for texts, tokens in chunks:
            yield texts, tokens, days[done:done + len(texts)]
            done += len(texts)
    results = []
    if processes <= 1 or len(letters) <= chunk_size:  # one chunk: forking would only copy memory
        outputs = map(lambda chunk: featurizer.arrays(*chunk), with_days(chunks))
        pool = None
    else:
        _worker_featurizer = featurizer  # forked workers inherit it, IDF table included
        pool = multiprocessing.get_context("fork").Pool(processes)
        outputs = _in_order(with_days(chunks), lambda chunk: pool.apply_async(_featurize_chunk, (chunk,)),
                            2 * processes)
    try:
        for output in outputs:
            results.append(output)
            if progress:
                progress(len(output[1]))
    finally:
        if pool:
            pool.terminate()
            pool.join()
    if not results:
        results = [featurizer.arrays([], [])]
    places = np.array([p for r in results for p in r[1]], dtype=object)
    others = np.array([o for r in results for o in r[2]], dtype=object)
    arrays = _concat_chunks([r[0] for r in results])
    del results
    release_memory()
    frame = pd.DataFrame({
        schema.LETTER_ID: letters[schema.LETTER_ID].astype(str).to_numpy(),
        schema.RECEIVED_AT: pd.to_datetime(letters[schema.RECEIVED_AT]).astype("datetime64[ns]").to_numpy(),
        schema.ADDRESSEE: letters[schema.ADDRESSEE].fillna("").astype(str).to_numpy(),
        schema.PETITIONER_KEY: letters[schema.PETITIONER_KEY].fillna("").astype(str).to_numpy(),
        BODY_HASH: arrays.pop(BODY_HASH),
        PLACES: places,
        OTHERS: others,
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
        self.letters = (pd.concat([index.letters, batch.letters], ignore_index=True) if len(index)
                        else batch.letters.reset_index(drop=True))
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
        self.first_of_body = np.full(self.bodies.max(initial=-1) + 1, -1, dtype=np.int64)
        self.first_of_body[self.bodies[::-1]] = np.arange(len(ids))[::-1]  # a letter holding each text
        self._csr = {}
        self.evidence_names = pc.split_pattern(pc.binary_join_element_wise(  # every name, for shared_names
            _arrow(self.letters[PLACES]), _arrow(self.letters[OTHERS]), pa.scalar("|", pa.large_string())), "|")

    def csr(self, name):
        """The CSR layout ``name`` of every letter (values, pointers), made once."""
        if name not in self._csr:
            new = (self.batch.arrays[name], self.batch.arrays[f"{name}_ptr"])
            if self.history:
                old_values, old_ptr = self.index.csr(name)
                new = (np.concatenate((old_values, new[0])), np.concatenate((old_ptr, new[1][1:] + old_ptr[-1])))
            self._csr[name] = new
        return self._csr[name]

    def bands(self, positions):
        """Band keys of ``positions`` (sorted), history rows read from the index."""
        old = positions[positions < self.history]
        parts = [np.asarray(self.index.array("bands")[old])] if len(old) else []
        parts.append(self.batch.arrays["bands"][positions[positions >= self.history] - self.history])
        return np.concatenate(parts)

    def vectors(self, positions):
        """TF-IDF rows of ``positions``, in that order."""
        old = positions < self.history
        if not old.any():
            return self.batch.vectors(positions - self.history, self.n_features)
        if old.all():
            return self.index.vectors(positions, self.n_features)
        stacked = sp.vstack([self.index.vectors(positions[old], self.n_features),
                             self.batch.vectors(positions[~old] - self.history, self.n_features)], format="csr")
        return stacked[np.argsort(np.concatenate((np.flatnonzero(old), np.flatnonzero(~old))))]

    def texts(self, positions):
        """Comparison texts of sorted ``positions``."""
        old, new = positions[positions < self.history], positions[positions >= self.history] - self.history
        return (self.index.texts(old) if len(old) else []) + self.batch.texts(new)


def _arrow(values):
    """A pandas string column as one pyarrow large_string array (no copy when it is one)."""
    values = pa.array(values)
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return values.cast(pa.large_string())


def _codes(values):
    """Integer codes of strings; -1 for the empty string (unknown)."""
    codes, uniques = pd.factorize(values.fillna("").astype(str))
    empty = np.flatnonzero(np.asarray(uniques == ""))
    if len(empty):
        codes = np.where(codes == empty[0], -1, codes)
    return codes.astype(np.int64)


# --- candidates -----------------------------------------------------------------------------

class Blocks:
    """Letters that share a blocking label (a petitioner, an LSH band, a same-matter key),
    sorted so that the pairs whose later letter lies in a range of positions are listed
    without listing the others: candidate pairs are made and scored chunk by chunk.

    A pair is two entries of one block from different letters, at most ``window`` days apart
    (whole days; a letter without a date pairs with its whole block), or any two when
    ``window`` is None. Each pair is listed once per block, from the entry of its later
    position.

    Parameters
    ----------
    blocks, positions : arrays of int, one entry each
        Block number (0..B-1) and letter position of each entry.
    days : array of float, optional
        Day number of each entry's letter, NaN when unknown; needed when ``window`` is given.
    window : int, optional
    """

    def __init__(self, blocks, positions, days=None, window=None):
        blocks, positions = np.asarray(blocks, dtype=np.int64), np.asarray(positions, dtype=np.int64)
        self.window = window
        if window is None:  # in a block by position: the partners of an entry are those before it
            offset, span = positions, int(positions.max(initial=0)) + 1
        else:  # in a block by day, undated entries first (offset 0, outside every window)
            dated = ~np.isnan(days)
            whole = np.floor(np.where(dated, days, 0)).astype(np.int64)
            offset = np.where(dated, whole - whole[dated].min(initial=0) + window + 1, 0)
            span = int(offset.max(initial=0)) + window + 1
        value = blocks * span + offset
        order = np.argsort(value)
        value, self.positions = value[order], positions[order].astype(np.int32)
        self.block = np.searchsorted(value, value - value % span).astype(np.int32)  # its block's first entry
        if window is not None:
            self.first_dated = np.searchsorted(value, value - value % span + 1).astype(np.int32)
            undated = value % span == 0
            self.low = np.where(undated, self.first_dated, np.searchsorted(value, value - window)).astype(np.int32)
            self.high = np.where(undated, np.searchsorted(value, value - value % span + span),
                                 np.searchsorted(value, value + window, side="right")).astype(np.int32)
        del value, order
        self.by_position = np.argsort(self.positions, kind="stable").astype(np.int32)
        self.sorted_positions = self.positions[self.by_position]

    def __len__(self):
        return len(self.positions)

    def _partner_ranges(self, entries):
        """Ranges of sorted entries that may pair with ``entries`` (sorted indices): a list
        of (starts, ends) arrays."""
        if self.window is None:
            return [(self.block[entries], entries)]
        return [(self.block[entries], self.first_dated[entries]), (self.low[entries], self.high[entries])]

    def weights(self, total):
        """For each position up to ``total``, at most how many pairs its entries list."""
        counts = sum(end - start for start, end in self._partner_ranges(np.arange(len(self.positions))))
        return np.bincount(self.positions, weights=counts, minlength=total)

    def pairs(self, lo, hi):
        """Pairs (a, b), ``a < b``, with ``lo <= b < hi``."""
        entries = self.by_position[np.searchsorted(self.sorted_positions, lo):
                                   np.searchsorted(self.sorted_positions, hi)]
        firsts, seconds = [], []
        for start, end in self._partner_ranges(entries):
            source, partner = index_ranges(start, end)
            a, b = self.positions[partner], self.positions[entries[source]]
            keep = a < b
            firsts.append(a[keep])
            seconds.append(b[keep])
        return np.concatenate(firsts), np.concatenate(seconds)


def _holding(values, wanted, bits=24):
    """Indices of ``values`` (int64) found in ``wanted``: a bitmap of hashed values first,
    then a sorted search of the few that pass it (a search for every value is slow when
    there are tens of millions)."""
    wanted = np.unique(wanted)
    shift = np.uint64(64 - bits)
    bitmap = np.zeros(1 << bits, dtype=bool)
    bitmap[mix64(wanted.view(np.uint64)) >> shift] = True
    maybe = np.flatnonzero(bitmap[mix64(values.view(np.uint64)) >> shift])
    if not len(wanted):
        return maybe
    found = np.minimum(np.searchsorted(wanted, values[maybe]), len(wanted) - 1)
    return maybe[wanted[found] == values[maybe]]


def usable_blocks(labels, positions, new, max_block):
    """Group entries (``labels``, letter ``positions``) into blocks by label, keeping blocks
    that hold a new letter and 2 to ``max_block`` entries (a label held by more letters is
    too generic to block on: a township and 问题, a placeholder name, boilerplate).

    Returns (block number, position) of the kept entries, grouped by block."""
    if not new.all():  # only labels a new letter holds
        relevant = _holding(labels, labels[new[positions]])
        labels, positions = labels[relevant], positions[relevant]
    order = np.argsort(labels)
    labels, positions = labels[order], positions[order].astype(np.int32)
    del order
    starts = np.flatnonzero(np.concatenate(([True], labels[1:] != labels[:-1])))[:len(labels)]
    del labels
    counts = np.diff(np.append(starts, len(positions)))
    kept = np.repeat((counts >= 2) & (counts <= max_block), counts)
    return np.repeat(np.arange(len(starts), dtype=np.int32), counts)[kept], positions[kept]


def same_text_pairs(pool):
    """Each new letter and the earliest other letter with its text (pairs ``a < b``)."""
    new = pool.is_new
    new_bodies = np.unique(pool.bodies[new])
    members = np.flatnonzero(np.isin(pool.bodies, new_bodies))
    members = members[np.lexsort((pool.rank[members], pool.bodies[members]))]
    _, starts, sizes = np.unique(pool.bodies[members], return_index=True, return_counts=True)
    group = np.repeat(np.arange(len(starts)), sizes)
    earliest = members[starts[group]]
    second = members[np.minimum(starts[group] + 1, len(members) - 1)]
    partner = np.where(members == earliest, np.where(sizes[group] > 1, second, members), earliest)
    chosen = new[members] & (partner != members)
    a, b = np.minimum(members, partner)[chosen], np.maximum(members, partner)[chosen]
    order = np.argsort(b, kind="stable")
    return a[order], b[order]


def candidate_blocks(pool, settings):
    """The blocking sources of candidate pairs: LSH bands, petitioners, same-matter keys."""
    total, new = len(pool.letters), pool.is_new
    bands = pool.bands(np.arange(total))
    labels, owner = bands.ravel().view(np.int64), np.repeat(np.arange(total), bands.shape[1])
    del bands
    lsh = Blocks(*usable_blocks(labels, owner, new, settings.max_lsh_bucket))
    del labels, owner
    known = np.flatnonzero(pool.keys >= 0)
    block, owner = usable_blocks(pool.keys[known], known, new, settings.max_petitioner_letters)
    petitioner = Blocks(block, owner, pool.days[owner], settings.repeat_window_days)
    # one kind of key at a time: tens of millions of keys are never held together
    kinds = []
    for owner, labels in matter_keys(pool):
        kinds.append(usable_blocks(labels, owner, new, settings.max_block))
        del owner, labels
    offsets = np.cumsum([0] + [int(numbers.max(initial=-1)) + 1 for numbers, _ in kinds[:-1]])
    block = np.concatenate([numbers + offset for (numbers, _), offset in zip(kinds, offsets)])
    owner = np.concatenate([positions for _, positions in kinds])
    del kinds
    matter = Blocks(block, owner, pool.days[owner], settings.same_matter_window_days)
    return lsh, petitioner, matter


def matter_keys(pool):
    """Same-matter blocking keys of each letter: every (specific name, top TF-IDF term), every
    pair of its top terms and every pair of its specific names, so a pair is a candidate
    when the letters share a name and a distinctive word, two distinctive words or two
    names (a village's letters about other matters stay apart). Yields (owner positions,
    keys) for each of the three kinds; their hashes are salted apart. With history in the
    pool, only keys made of a new letter's names and terms are made (the others could
    not block a new letter)."""
    names, name_ptr = pool.csr("names")
    terms, term_ptr = pool.csr("terms")
    total = len(pool.letters)
    name_owner = np.repeat(np.arange(total), np.diff(name_ptr))
    term_owner = np.repeat(np.arange(total), np.diff(term_ptr))
    if not pool.is_new.all():  # a key a new letter holds is made of its names and terms only
        kept = _holding(names.view(np.int64), names[pool.is_new[name_owner]].view(np.int64))
        names, name_owner = names[kept], name_owner[kept]
        kept = _holding(terms.view(np.int64), terms[pool.is_new[term_owner]].view(np.int64))
        terms, term_owner = terms[kept], term_owner[kept]
    i, j = join_pairs(name_owner, term_owner)
    yield name_owner[i], mix64(names[i] ^ mix64(terms[j] + np.uint64(1))).view(np.int64)
    del i, j
    k, m = join_pairs(term_owner, term_owner)
    k, m = k[terms[k] < terms[m]], m[terms[k] < terms[m]]  # each unordered pair of top terms once
    yield term_owner[k], mix64(mix64(terms[k] + np.uint64(2)) ^ terms[m]).view(np.int64)
    del k, m
    n, q = join_pairs(name_owner, name_owner)
    n, q = n[names[n] < names[q]], q[names[n] < names[q]]  # each unordered pair of names once
    yield name_owner[n], mix64(mix64(names[n] + np.uint64(3)) ^ names[q]).view(np.int64)


def chunk_bounds(weights, start, limit):
    """Cut positions ``start..len(weights)-1`` into ranges whose ``weights`` sum to at most
    ``limit`` (a heavier position is a range of its own); returns the range bounds."""
    cumulative = np.concatenate(([0.0], np.cumsum(weights[start:])))
    bounds = [0]
    while bounds[-1] < len(cumulative) - 1:
        end = int(np.searchsorted(cumulative, cumulative[bounds[-1]] + limit, side="right")) - 1
        bounds.append(max(end, bounds[-1] + 1))
    return [start + bound for bound in bounds]


class Candidates:
    """Candidate pairs of the pool (global positions ``a < b``, ``b`` new: every pair has a
    new letter and new letters come last), listed by ranges of ``b``: the same text, a
    shared LSH band of different texts, the same petitioner within the repeat window, a
    shared same-matter key within its window."""

    def __init__(self, pool, settings):
        self.pool = pool
        self.same = same_text_pairs(pool)
        self.lsh, self.petitioner, self.matter = candidate_blocks(pool, settings)
        release_memory()

    def chunks(self, limit):
        """Ranges (lo, hi) of ``b`` holding about ``limit`` listed pairs each."""
        total = len(self.pool.letters)
        weights = sum(blocks.weights(total) for blocks in (self.lsh, self.petitioner, self.matter))
        bounds = chunk_bounds(weights, self.pool.history, limit)
        return list(zip(bounds[:-1], bounds[1:]))

    def pairs(self, lo, hi):
        """Every candidate pair with ``lo <= b < hi`` once, sorted by b then a."""
        bodies = self.pool.bodies
        same_a, same_b = self.same
        chosen = slice(np.searchsorted(same_b, lo), np.searchsorted(same_b, hi))
        pieces = [(same_a[chosen], same_b[chosen])]
        a, b = self.lsh.pairs(lo, hi)
        different = bodies[a] != bodies[b]  # the same text: the first source
        pieces += [(a[different], b[different]), self.petitioner.pairs(lo, hi), self.matter.pairs(lo, hi)]
        return _unique_pairs(np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces]),
                             len(self.pool.letters))


def _unique(values, inverse=False):
    """Sorted distinct ``values`` (and, with ``inverse``, where each value went): np.unique
    by sorting, which is faster than its hashing on large int arrays."""
    order = np.argsort(values) if inverse else None
    ordered = values[order] if inverse else np.sort(values)
    first = np.concatenate(([True], ordered[1:] != ordered[:-1])) if len(ordered) else np.zeros(0, dtype=bool)
    if not inverse:
        return ordered[first]
    where = np.empty(len(values), dtype=np.int64)
    where[order] = np.cumsum(first) - 1
    return ordered[first], where


def _unique_pairs(first, second, total):
    """Each pair (``first < second``) once, sorted by ``second`` then ``first``."""
    code = _unique(second.astype(np.int64) * total + first)
    return code % total, code // total


# --- scores and relations -----------------------------------------------------------------------

def character_counts(texts, bins=256, step=10_000):
    """How often each text holds characters of each of ``bins`` hashed bins (uint16; texts
    are cut to ``compare_chars``, well under 65,536)."""
    counts = np.empty((len(texts), bins), dtype=np.uint16)
    shift = np.uint32(32 - int(np.log2(bins)))
    for start in range(0, len(texts), step):
        part = texts[start:start + step]
        lengths = np.fromiter(map(len, part), dtype=np.int64, count=len(part))
        codes = np.frombuffer("".join(part).encode("utf-32-le"), dtype=np.uint32)
        cells = np.repeat(np.arange(len(part)) * bins, lengths) + ((codes * np.uint32(0x9E3779B1)) >> shift)
        counts[start:start + len(part)] = np.bincount(cells, minlength=len(part) * bins).reshape(len(part), bins)
    return counts


def ratio_bound(texts, left, right):
    """An upper bound of the rapidfuzz ratio of texts ``left[i]`` and ``right[i]`` (indices
    into ``texts``), cheap to compute for many pairs. The ratio is 2 x LCS / total length,
    and a common subsequence holds each character at most as often as the text that has it
    fewer times; counting characters in hashed bins only loosens that bound."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    counts = character_counts(texts)
    shared = np.concatenate([np.minimum(counts[left[i:i + 50_000]], counts[right[i:i + 50_000]]).sum(axis=1)
                             for i in range(0, len(left), 50_000)] or [np.zeros(0)])
    total = lengths[left] + lengths[right]
    return np.where(total > 0, 2.0 * shared / np.maximum(total, 1), 1.0)


def char_similarity(pool, a, b, needed, cutoff=0.0, workers=1):
    """rapidfuzz ratio (0-1) of the comparison texts where ``needed`` (NaN elsewhere; 1 for
    the same text), computed once per distinct text pair. Pairs whose ratio is surely under
    ``cutoff`` (``ratio_bound``) are not compared and stay NaN."""
    body_a, body_b = pool.bodies[a], pool.bodies[b]
    same = body_a == body_b
    similarity = np.where(same, 1.0, np.nan)
    todo = needed & ~same
    if todo.any():
        total = len(pool.first_of_body)
        code, inverse = _unique(body_a[todo].astype(np.int64) * total + body_b[todo], inverse=True)
        left, right = pool.first_of_body[code // total], pool.first_of_body[code % total]
        involved = _unique(np.concatenate((left, right)))
        texts = pool.texts(involved)
        left, right = np.searchsorted(involved, left), np.searchsorted(involved, right)
        compared = ratio_bound(texts, left, right) >= cutoff - 1e-9 if cutoff else np.ones(len(code), dtype=bool)
        scores = np.full(len(code), np.nan)
        scores[compared] = cpdist([texts[i] for i in left[compared].tolist()],
                                  [texts[i] for i in right[compared].tolist()],
                                  scorer=fuzz.ratio, workers=workers, dtype=np.float32) / 100.0
        similarity[todo] = scores[inverse]
    return similarity


def tfidf_cosine(pool, a, b, chunk=50_000):
    """Cosine of the letters' TF-IDF vectors (rows are L2-normalised), ``chunk`` pairs at a
    time: only their rows are copied out of the pool."""
    out = np.empty(len(a))
    for start in range(0, len(a), chunk):
        end = start + chunk
        out[start:end] = np.asarray(pool.vectors(a[start:end]).multiply(pool.vectors(b[start:end])).sum(axis=1)).ravel()
    return out


def shared_name_counts(pool, a, b):
    """How many specific names (the ones counted: places, organisations, numbers, full names
    of people) each pair of letters shares."""
    values, pointers = pool.csr("names")
    names_a, offsets = csr_rows(values, pointers, a)
    pair = np.repeat(np.arange(len(a)), np.diff(offsets))
    involved = _unique(b)
    names_b, offsets_b = csr_rows(values, pointers, involved)
    owner = np.repeat(involved, np.diff(offsets_b)).astype(np.uint64)
    table = np.sort((owner << np.uint64(40)) | (names_b >> np.uint64(24)))
    query = (b[pair].astype(np.uint64) << np.uint64(40)) | (names_a >> np.uint64(24))
    found = np.searchsorted(table, query)
    hit = (found < len(table)) & (table[np.minimum(found, len(table) - 1)] == query)
    return np.bincount(pair[hit], minlength=len(a))


def shared_names(pool, first, second):
    """The names (specific ones, masked people, organisation terms) letters ``first[i]`` and
    ``second[i]`` share: sorted and "、"-joined, '' when none (a pyarrow string array).
    Computed with arrow and numpy, not per pair in Python: scoring threads share the GIL."""
    lists_a, lists_b = pool.evidence_names.take(first), pool.evidence_names.take(second)
    names_a, names_b = pc.list_flatten(lists_a), pc.list_flatten(lists_b)
    distinct = pc.unique(pa.concat_arrays([names_a, names_b]))
    distinct = distinct.take(pc.array_sort_indices(distinct))  # code point order, as sorted() has it
    size = len(distinct) + 1

    def keys(lists, names):
        pairs = pc.list_parent_indices(lists).to_numpy().astype(np.int64)
        return pairs * size + pc.index_in(names, distinct).to_numpy(zero_copy_only=False)
    both = np.sort(np.concatenate((_unique(keys(lists_a, names_a)), _unique(keys(lists_b, names_b)))))
    shared = both[1:][both[1:] == both[:-1]]  # np.intersect1d, without np.unique's slow hashing
    names = distinct.take(shared % size)
    named = pc.not_equal(names, "")
    pair = (shared // size)[named.to_numpy(zero_copy_only=False)]
    offsets = np.searchsorted(pair, np.arange(len(first) + 1)).astype(np.int32)
    return pc.binary_join(pa.ListArray.from_arrays(offsets, names.filter(named)), pa.scalar("、", pa.large_string()))


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
    similarity = char_similarity(pool, a, b, cosine >= settings.near_min_cosine, settings.near_same_similarity,
                                 workers)
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
    a, b, similarity = a[linked], b[linked], similarity[linked]
    missing = np.isnan(similarity)  # the evidence of the links not compared yet
    similarity[missing] = char_similarity(pool, a[missing], b[missing], np.ones(missing.sum(), dtype=bool),
                                          workers=workers)
    earlier = pool.rank[a] <= pool.rank[b]
    first, second = np.where(earlier, a, b), np.where(earlier, b, a)

    ids = pool.letters[schema.LETTER_ID].array
    near_relation = np.isin(relation[linked], [EXACT, MULTI, RESEND])
    return pd.DataFrame({
        "letter_a": ids.take(first), "letter_b": ids.take(second),
        "relation": relation[linked],
        "score": np.round(np.where(near_relation, similarity, np.minimum(matter[linked], 1.0)), 3),
        "shared_names": pd.array(shared_names(pool, first, second), dtype="str"),
        "char_similarity": np.round(similarity, 3),
        "tfidf_cosine": np.round(cosine[linked], 3),
        "days_apart": np.round(days[linked], 1),
        "same_petitioner": same_petitioner[linked],
    }, columns=list(LINK_COLUMNS))


def find_links(pool, settings, workers=1):
    """Links of the pool's new letters. Candidate pairs are listed and scored chunk by chunk
    (``chunk_pairs`` at a time), ``workers`` chunks at once in threads (numpy, scipy and
    rapidfuzz release the GIL), so memory holds a few chunks' pairs, not all of them."""
    empty = np.zeros(0, dtype=np.int64)
    if pool.history == len(pool.letters):
        return score_pairs(pool, empty, empty, settings)
    candidates = Candidates(pool, settings)

    def links(bounds):
        scored = score_pairs(pool, *candidates.pairs(*bounds), settings)
        release_memory()
        return scored
    with ThreadPoolExecutor(max(1, workers)) as executor:
        frames = list(executor.map(links, candidates.chunks(settings.chunk_pairs)))
    return pd.concat(frames, ignore_index=True)


# --- cases ---------------------------------------------------------------------------------------

def assign_cases(letters, links):
    """Cases of ``letters`` (every indexed letter) from ``links`` (every link).

    Returns a DataFrame indexed like ``letters`` with ``case_id``, ``duplicate_of`` (the
    earliest letter it is linked to, '' for the case's first letter) and ``relation``.
    Ids are matched and sorted with arrow (millions of links: no Python string per link).
    """
    ids = _arrow(letters[schema.LETTER_ID])
    days = pd.to_datetime(letters[schema.RECEIVED_AT]).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    days = np.where(pd.isna(letters[schema.RECEIVED_AT]).to_numpy(), np.iinfo(np.int64).max, days)
    order = pc.sort_indices(pa.table({"day": days, "id": ids}),
                            sort_keys=[("day", "ascending"), ("id", "ascending")]).to_numpy()
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))

    ends = (pc.index_in(pa.concat_arrays([_arrow(links["letter_a"]), _arrow(links["letter_b"])]), value_set=ids)
            if len(links) else pa.array([], type=pa.int32()))
    if ends.null_count:
        raise PetitionError("the dedupe index holds links to letters it does not hold; rebuild it with --rebuild")
    ends = ends.to_numpy().astype(np.int64)
    a, b = ends[:len(links)], ends[len(links):]
    graph = sp.coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(len(ids), len(ids)))
    _, component = connected_components(graph, directed=False)
    del graph
    first_rank = np.full(component.max() + 1 if len(ids) else 0, np.iinfo(np.int64).max)
    np.minimum.at(first_rank, component, rank)
    first = order[first_rank[component]]
    # every link seen from both ends; keep each letter's earliest neighbour
    me, other = np.concatenate((a, b)), np.concatenate((b, a))
    del a, b
    codes, names = pd.factorize(links["relation"]) if len(links) else (np.zeros(0, dtype=np.int64), np.zeros(0))
    pick = np.argsort(me * len(ids) + rank[other], kind="stable")
    me, other, relation = me[pick], other[pick], np.concatenate((codes, codes))[pick]
    head = np.flatnonzero(np.concatenate(([True], me[1:] != me[:-1]))) if len(me) else me
    duplicate_of = np.full(len(ids), -1, dtype=np.int64)
    kind = np.full(len(ids), "", dtype=object)
    duplicate_of[me[head]], kind[me[head]] = other[head], np.asarray(names, dtype=object)[relation[head]]
    is_first = first == np.arange(len(ids))
    duplicate_of[is_first], kind[is_first] = -1, ""
    duplicate_ids = pc.if_else(pa.array(duplicate_of >= 0), ids.take(np.maximum(duplicate_of, 0)), "")
    return pd.DataFrame({schema.CASE_ID: pd.array(ids.take(first), dtype="str"),
                         schema.DUPLICATE_OF: pd.array(duplicate_ids, dtype="str"),
                         schema.RELATION: pd.array(kind, dtype="str")}, index=letters.index)


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

TEXT_COLUMNS = (schema.CLEAN_TEXT, schema.TOKENS)


def read_letters(run):
    """The run's letters from its latest stage output (classified, else segmented), without
    their texts (``text_chunks`` reads those). Returns (stage name, its path, letters)."""
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
    columns = [c for c in NEEDED_COLUMNS if c not in TEXT_COLUMNS] + ([schema.TOPICS] if schema.TOPICS in available else [])
    return stage_name, path, run.read(stage_name, columns=columns)


def text_chunks(path, rows, chunk_size):
    """(clean_texts, tokens) lists of the rows of Parquet ``path`` where ``rows`` (bool, in
    file order), ``chunk_size`` rows at a time, read batch by batch."""
    start = 0
    for batch in parquet_batches(path, chunk_size, list(TEXT_COLUMNS)):
        chosen = np.flatnonzero(rows[start:start + batch.num_rows])
        start += batch.num_rows
        if len(chosen):
            batch = batch.take(pa.array(chosen))
            yield batch.column(0).to_pylist(), batch.column(1).to_pylist()


def write_deduped(source, target, keep, cases):
    """Copy ``source`` Parquet rows where ``keep`` to ``target``, adding the case columns,
    batch by batch (a million letters' text need not be in memory twice)."""
    added = {column: cases[column].to_numpy().astype(str) for column in (schema.CASE_ID, schema.DUPLICATE_OF,
                                                                          schema.RELATION)}
    start = 0
    with atomic_path(target) as tmp:
        writer = None
        for batch in parquet_batches(source, 65536):
            table = pa.Table.from_batches([batch])
            mask = keep[start:start + len(table)]
            rows = np.flatnonzero(mask)
            table = table.take(rows)
            for column, values in added.items():
                table = table.append_column(column, pa.array(values[start:start + len(mask)][rows], type=pa.string()))
            start += len(mask)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
        if writer is None:  # no rows: write the schema with the new columns
            empty = pq.read_schema(source).empty_table()
            for column in added:
                empty = empty.append_column(column, pa.array([], type=pa.string()))
            pq.write_table(empty, tmp)
        else:
            writer.close()


def dedupe_run(run, index, config, processes=None, progress=None):
    """Match the run's letters against ``index`` and each other, add them to it, write the
    outputs. Returns (rows in, rows out, quarantine records, summary dict)."""
    settings = config.dedupe
    processes = processes or settings.processes
    stage_name, path, letters = read_letters(run)
    letters = letters.reset_index(drop=True)
    indexed = pd.Index(index.letters[schema.LETTER_ID]) if len(index) else pd.Index([])
    known = letters[schema.LETTER_ID].astype(str).isin(indexed).to_numpy()
    featurizer = Featurizer.from_config(config)
    batch = featurize(letters[~known], text_chunks(path, ~known, settings.chunk_size), featurizer, processes,
                      settings.chunk_size, progress)
    # a known id must come with the text it was indexed with
    quarantine = []
    if known.any():
        again = letters[known]
        clean = [text for texts, _ in text_chunks(path, known, settings.chunk_size) for text in texts]
        hashes = text_hashes(comparison_texts(clean, settings.min_body_chars))
        stored = index.letters.set_index(schema.LETTER_ID)[BODY_HASH]
        changed = stored.loc[again[schema.LETTER_ID].astype(str)].to_numpy() != hashes
        quarantine = [{schema.SOURCE_FILE: str(path), schema.SOURCE_ROW: row + 1,
                       "column": schema.LETTER_ID, "raw": letter_id,
                       "reason": "letter_id already in the dedupe index with another text"}
                      for row, letter_id in zip(np.flatnonzero(known)[changed].tolist(),
                                                again[schema.LETTER_ID].astype(str)[changed])]
    links = find_links(Pool(index, batch, settings.tfidf_features), settings, workers=processes)
    history_size, added = len(index), len(batch)
    index.add(batch, links)
    everything = index.letters if len(index) else batch.letters  # the latter has the columns
    del batch  # the index holds its features now, memory-mapped
    all_links = index.links if len(index.links) else links
    cases = assign_cases(everything, all_links)
    run_ids = letters[schema.LETTER_ID].astype(str)
    bad = run_ids.isin({q["raw"] for q in quarantine}).to_numpy()
    position = pd.Index(everything[schema.LETTER_ID]).get_indexer(run_ids)
    run_cases = cases.iloc[np.where(position >= 0, position, 0)].reset_index(drop=True)
    write_deduped(path, run.output_path("dedupe"), ~bad, run_cases)
    in_run = np.zeros(len(everything), dtype=bool)
    in_run[position[~bad]] = True
    before = np.arange(len(everything)) < history_size
    table = case_table(everything, cases, in_run, before)
    write_csv(table, run.path / "cases.csv")
    run_links = all_links[all_links["letter_a"].isin(run_ids[~bad]) | all_links["letter_b"].isin(run_ids[~bad])]
    write_csv(run_links.reset_index(drop=True), run.path / "links.csv")
    summary = summarize(letters[~bad], run_cases[~bad], links, table, added, index, config)
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
