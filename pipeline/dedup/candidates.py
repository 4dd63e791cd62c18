"""Candidate pairs, the second step of dedupe: the pairs of letters worth scoring, each with
at least one of the night's letters.

* same comparison text (body hash): linked to the earliest letter with that text;
* MinHash LSH over character shingles: texts that share a band (``pipeline.dedup.minhash``);
* same ``petitioner_key`` within ``repeat_window_days``;
* within ``same_matter_window_days``: a shared specific name and top TF-IDF term, or two
  shared specific names (``blocking.matter_keys``).

A blocking key (band, petitioner, same-matter key) held by more letters than its ``max_``
setting is skipped as too generic. Candidates are listed by ranges of their later letter
(``Blocks``, ``Candidates``), so memory grows with the letters, not with their pairs.
Letters without a date pair with every letter of their blocks whatever the windows. The keys
come from ``pipeline.dedup.blocking``: the night's letters' are looked up in the index shards'
sorted keys (``candidate_blocks``); the Spark engine joins on ``blocking_keys`` instead
(``spark_blocking``).
"""
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from pipeline import schema
from pipeline.dedup.arrays import arrow_strings, index_ranges, is_increasing, string_codes, unique, unique_pairs
from pipeline.dedup.blocking import LSH, MATTER_KINDS, NAME_TERM, PETITIONER, kind_rules, letter_keys, usable_blocks
from pipeline.parallel import release_memory
from pipeline.rundir import concat_frames


# --- the letters being matched: the index's, then the night's ---------------------------------

class Pool:
    """The letters being matched: the index letters (positions 0..H-1) followed by the new
    ones (H..H+N-1), with what candidates and scoring read of them.

    Parameters
    ----------
    index : DedupeIndex
        The letters seen before (their features stay memory-mapped).
    batch : Batch
        The night's new letters (``pipeline.dedup.features.featurize``), usually staged in the
        index (``DedupeIndex.staging_folder``) and read memory-mapped.
    n_features : int
        Hash space of the TF-IDF vectors.
    """

    def __init__(self, index, batch, n_features):
        self.index, self.batch, self.n_features = index, batch, n_features
        self.history = len(index)
        self.letters = concat_frames([index.letters, batch.letters] if len(index) else [batch.letters])
        self.is_new = np.arange(len(self.letters)) >= self.history
        dates = pd.to_datetime(self.letters[schema.RECEIVED_AT])
        self.days = ((dates - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400).to_numpy(dtype=float)
        self.keys = string_codes(self.letters[schema.PETITIONER_KEY])
        self.addressees = string_codes(self.letters[schema.ADDRESSEE])
        self.bodies = pd.factorize(self.letters[schema.BODY_HASH])[0]
        ids = self.letters[schema.LETTER_ID].to_numpy(dtype=str)
        self.order = np.lexsort((ids, np.nan_to_num(self.days, nan=np.inf)))  # earliest first
        self.rank = np.empty(len(ids), dtype=np.int64)
        self.rank[self.order] = np.arange(len(ids))
        self.first_of_body = np.full(self.bodies.max(initial=-1) + 1, -1, dtype=np.int64)
        self.first_of_body[self.bodies[::-1]] = np.arange(len(ids))[::-1]  # a letter holding each text
        self._made = {}
        # every name of each letter (specific ones, masked people, terms), for shared_names
        self.name_lists = pc.split_pattern(pc.binary_join_element_wise(
            arrow_strings(self.letters[schema.PLACES]), arrow_strings(self.letters[schema.OTHERS]),
            pa.scalar("|", pa.large_string())), "|")

    def __reduce__(self):
        # to a Spark worker: the index's shards and the batch travel as their folders
        # (``Batch.saved_for_workers``), the rest is made again there
        return Pool, (self.index, self.batch, self.n_features)

    def csr(self, name):
        """The CSR layout ``name`` of every letter (values, pointers), made once."""
        if name not in self._made:
            new = (self.batch.arrays[name], self.batch.arrays[f"{name}_ptr"])
            if self.history:
                old_values, old_ptr = self.index.csr(name)
                new = (np.concatenate((old_values, new[0])), np.concatenate((old_ptr, new[1][1:] + old_ptr[-1])))
            self._made[name] = new
        return self._made[name]

    def bands(self, positions):
        """Band keys of ``positions`` (sorted), history rows read from the index."""
        old = positions[positions < self.history]
        parts = [self.index.rows("bands", old)] if len(old) else []
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
        order = np.concatenate((np.flatnonzero(old), np.flatnonzero(~old)))
        return stacked if is_increasing(order) else stacked[np.argsort(order)]

    def texts(self, positions, name="text"):
        """Comparison texts (``name`` "title": titles) of sorted ``positions``."""
        old, new = positions[positions < self.history], positions[positions >= self.history] - self.history
        return (self.index.texts(old, name) if len(old) else []) + self.batch.texts(new, name)

    def new_keys(self):
        """{kind: the blocking keys (``blocking_keys``) the new letters hold, sorted and distinct},
        made once."""
        if "new_keys" not in self._made:
            self._made["new_keys"] = {kind: unique(keys) for kind, _, keys in
                                      blocking_keys(self, self.history, len(self.letters))}
        return self._made["new_keys"]

    def counts(self, name):
        """How many values each letter holds in the CSR layout ``name`` (bytes of its text for
        ``text`` and ``title``), made once from the pointers."""
        if f"{name}_counts" not in self._made:
            new = np.diff(self.batch.arrays[f"{name}_ptr"])
            self._made[f"{name}_counts"] = np.concatenate((self.index.counts(name), new)) if self.history else new
        return self._made[f"{name}_counts"]

    def per_letter(self, name):
        """The array ``name`` with one value per letter (``chars``) of every letter, made once."""
        if name not in self._made:
            new = self.batch.arrays[name]
            self._made[name] = np.concatenate((self.index.array(name), new)) if self.history else np.asarray(new)
        return self._made[name]



# --- blocks of letters sharing a label ------------------------------------------------------

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


def blocking_keys(pool, lo, hi):
    """The blocking keys of the pool's letters at positions ``lo..hi-1``, one kind at a time:
    yields (kind, owner positions, keys as int64) for the LSH bands, the petitioner keys and
    the two kinds of ``blocking.matter_keys``; with history in the pool, only matter keys
    made of a new letter's names and terms (the others could not block a new letter). The
    Spark engine joins on these (``spark_blocking``)."""
    positions = np.arange(lo, hi)
    names, terms = pool.csr("names"), pool.csr("terms")
    within = (names[0][names[1][pool.history]:], terms[0][terms[1][pool.history]:]) if pool.history else None
    kinds = letter_keys(pool.bands(positions), names, terms, lo, hi, within)  # new letters come last
    yield next(kinds)
    known = positions[pool.keys[positions] >= 0]
    yield PETITIONER, known, pool.keys[known]
    yield from kinds


def petitioner_keys(pool):
    """The petitioner keys as ``blocking.usable_blocks`` reads them: (keys sorted, positions,
    0) of the new letters, then of the earlier ones."""
    known = np.flatnonzero(pool.keys >= 0)
    sources = []
    for part in (known[known >= pool.history], known[known < pool.history]):
        order = np.argsort(pool.keys[part], kind="stable")
        sources.append((pool.keys[part][order], part[order], 0))
    return sources


def candidate_blocks(pool, settings):
    """The blocking sources of candidate pairs: LSH bands, petitioners, same-matter keys. The
    night's keys are looked up in the index shards' sorted keys, one kind at a time."""
    rules = kind_rules(settings)
    kinds = {PETITIONER: usable_blocks(petitioner_keys(pool), rules[PETITIONER][0])}
    for kind, keys, rows in pool.batch.block_keys():
        earlier = pool.index.block_keys(kind) if pool.history else []
        kinds[kind] = usable_blocks([(keys, rows, pool.history), *earlier], rules[kind][0])
        del keys, rows, earlier  # memory maps of the shards' keys: unmapped here
    lsh = Blocks(*kinds.pop(LSH))
    block, owner = kinds.pop(PETITIONER)
    petitioner = Blocks(block, owner, pool.days[owner], rules[PETITIONER][1])
    matter = [kinds.pop(kind) for kind in MATTER_KINDS]
    offsets = np.cumsum([0] + [int(numbers.max(initial=-1)) + 1 for numbers, _ in matter[:-1]])
    block = np.concatenate([numbers + offset for (numbers, _), offset in zip(matter, offsets)])
    owner = np.concatenate([positions for _, positions in matter])
    del matter
    matter = Blocks(block, owner, pool.days[owner], rules[NAME_TERM][1])
    return lsh, petitioner, matter


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
        return unique_pairs(np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces]),
                            len(self.pool.letters))
