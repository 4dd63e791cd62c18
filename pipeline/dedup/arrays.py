"""Array helpers the dedup wing shares: hashing, ranges, joins and sets of int arrays, CSR
layouts, string columns as arrow arrays.

All of them are vectorised: no Python loop runs per element, so they scale to the tens of
millions of blocking keys and candidate pairs of a million letters.
"""
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


# --- hashing --------------------------------------------------------------------------------------

def mix64(values):
    """SplitMix64 finaliser: a well-spread uint64 hash of each uint64 value (vectorised)."""
    z = np.asarray(values, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def text_hashes(texts):
    """A 64-bit hash of each whole text (vectorised; equal texts, equal hashes)."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    codes = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    starts = np.cumsum(lengths) - lengths
    offset = np.arange(len(codes)) - np.repeat(starts, lengths)
    # position-dependent mixing, summed per text; the length is mixed in last
    mixed = mix64(codes ^ (offset.astype(np.uint64) << np.uint64(32)))
    sums = np.zeros(len(texts), dtype=np.uint64)
    nonempty = lengths > 0
    sums[nonempty] = np.add.reduceat(mixed, starts[nonempty]) if len(codes) else 0
    return mix64(sums ^ mix64(lengths.astype(np.uint64)))


# --- ranges, joins and sets -----------------------------------------------------------------------

def index_ranges(starts, ends):
    """Every index in ``starts[i]..ends[i]-1`` and the ``i`` it came from (empty ranges
    skipped), as two int64 arrays: ranges of many rows expanded without a Python loop."""
    counts = np.maximum(ends - starts, 0)
    source = np.repeat(np.arange(len(starts)), counts)
    index = np.arange(counts.sum(), dtype=np.int64) + np.repeat(starts - (np.cumsum(counts) - counts), counts)
    return source, index


def run_bounds(keys):
    """Where each run of equal ``keys`` (a string column) begins, and the length: a list of
    ints ``[start_0, start_1, ..., len(keys)]``, so run ``i`` is ``bounds[i]:bounds[i + 1]``.
    Compared in Arrow: a million keys never become Python strings."""
    keys = arrow_strings(keys)
    changed = pc.not_equal(keys.slice(1), keys.slice(0, max(len(keys) - 1, 0))).to_numpy(zero_copy_only=False)
    return ([0] if len(keys) else []) + (np.flatnonzero(changed) + 1).tolist() + [len(keys)]


def join_pairs(left_labels, right_labels):
    """Every (i, j) with ``left_labels[i] == right_labels[j]`` (a sort-merge join).

    Returns two int64 arrays of positions into the left and the right array, by ``i``, then
    by ``j``.
    """
    left = np.asarray(left_labels, dtype=np.int64)
    right = np.asarray(right_labels, dtype=np.int64)
    if not len(left) or not len(right):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(right, kind="stable")
    ordered = right[order]
    first, index = index_ranges(np.searchsorted(ordered, left, side="left"),
                                np.searchsorted(ordered, left, side="right"))
    return first, order[index]


def unique(values, inverse=False):
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


def is_increasing(values):
    """Whether ``values`` are in strictly increasing order (rows asked for in order need no reordering)."""
    return bool((values[1:] > values[:-1]).all())


def unique_pairs(first, second, total):
    """Each pair (``first < second``, positions below ``total``) once, sorted by ``second``
    then ``first``."""
    code = unique(second.astype(np.int64) * total + first)
    return code % total, code // total


def holding(values, wanted, bits=24):
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


# --- CSR layouts: per-row lists as (values, pointers) ------------------------------------------------

def csr_rows(values, pointers, rows):
    """Rows ``rows`` of a CSR layout (``values``, ``pointers``) as (values, pointers)."""
    starts, ends = pointers[rows], pointers[np.asarray(rows) + 1]
    _, take = index_ranges(starts, ends)
    return values[take], np.concatenate(([0], np.cumsum(ends - starts))).astype(np.int64)


def csr_pointers(lengths):
    """CSR pointers (int64, one more than rows) of rows of ``lengths`` values."""
    return np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)


# --- string columns ---------------------------------------------------------------------------------

def arrow_strings(values):
    """A pandas string column as one pyarrow large_string array (no copy when it is one)."""
    values = pa.array(values)
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return values.cast(pa.large_string())


def string_codes(values):
    """Integer codes of strings; -1 for the empty string (unknown)."""
    codes, uniques = pd.factorize(values.fillna("").astype(str))
    empty = np.flatnonzero(np.asarray(uniques == ""))
    if len(empty):
        codes = np.where(codes == empty[0], -1, codes)
    return codes.astype(np.int64)
