"""Blocking keys: the labels letters are grouped by before pairs are formed.

Four kinds: a letter's LSH band keys, its petitioner, and two same-matter kinds made of its
specific names and top TF-IDF terms (``matter_keys``). All but the petitioner depend on the
letter alone, so each index shard keeps them sorted (``sorted_keys``, files ``*_keys.npy``):
a night looks its letters' keys up there (``usable_blocks``) instead of making again the
earlier letters' LSH keys (16 million for a million letters) and every same-matter key of
their names and terms that tonight's letters hold too (millions more).
"""
import numpy as np

from pipeline.dedup.arrays import holding, index_ranges, join_pairs, mix64

# the kinds of blocking key
LSH, PETITIONER, NAME_TERM, NAME_PAIR = range(4)
MATTER_KINDS = (NAME_TERM, NAME_PAIR)
# the kinds a letter's own features make, kept sorted in the index shards: (kind, file stem)
STORED_KINDS = {LSH: "lsh_keys", NAME_TERM: "name_term_keys", NAME_PAIR: "name_pair_keys"}
# a shard's files of sorted keys: each kind's keys (int64) and the shard row of each (int32)
KEY_ARRAYS = tuple(name for stem in STORED_KINDS.values() for name in (stem, f"{stem}_rows"))


def kind_rules(settings):
    """Per kind of blocking key: (most entries a usable key holds, window in days or None)."""
    matter = (settings.max_block, settings.same_matter_window_days)
    return {LSH: (settings.max_lsh_bucket, None), **dict.fromkeys(MATTER_KINDS, matter),
            PETITIONER: (settings.max_petitioner_letters, settings.repeat_window_days)}


def matter_keys(names, terms, lo, hi, within=None):
    """Same-matter blocking keys of the letters at rows ``lo..hi-1``: every (specific name,
    top TF-IDF term) and every pair of its specific names, so a pair is a candidate when the
    letters share a name and a distinctive word, or two names (a village's letters about
    other matters stay apart). Two shared top terms without a shared name are not a key: on
    the board such pairs were three in four of all candidates and none became a link (the
    LSH bands and the names find one matter's rewrites).

    ``names`` and ``terms`` are CSR layouts (values as uint64 hashes, pointers) of every row;
    ``within``, optional, the (names, terms) a key must be made of: keys of other names and
    terms are not made (an earlier letter's key no new letter holds could not block it).
    Yields (owner rows, keys as int64) for each of the two kinds; their hashes are salted
    apart."""
    (names, name_ptr), (terms, term_ptr) = names, terms
    names, terms = names[name_ptr[lo]:name_ptr[hi]], terms[term_ptr[lo]:term_ptr[hi]]
    name_owner = np.repeat(np.arange(lo, hi), np.diff(name_ptr[lo:hi + 1]))
    term_owner = np.repeat(np.arange(lo, hi), np.diff(term_ptr[lo:hi + 1]))
    if within is not None:
        kept = holding(names.view(np.int64), within[0].view(np.int64))
        names, name_owner = names[kept], name_owner[kept]
        kept = holding(terms.view(np.int64), within[1].view(np.int64))
        terms, term_owner = terms[kept], term_owner[kept]
    i, j = join_pairs(name_owner, term_owner)
    yield name_owner[i], mix64(names[i] ^ mix64(terms[j] + np.uint64(1))).view(np.int64)
    del i, j
    n, q = join_pairs(name_owner, name_owner)
    n, q = n[names[n] < names[q]], q[names[n] < names[q]]  # each unordered pair of names once
    yield name_owner[n], mix64(mix64(names[n] + np.uint64(3)) ^ names[q]).view(np.int64)


def letter_keys(bands, names, terms, lo, hi, within=None):
    """The keys of ``STORED_KINDS`` of rows ``lo..hi-1``: yields (kind, owner rows, keys as
    int64), the LSH bands (``bands``: those rows' band keys) then ``matter_keys``."""
    yield LSH, np.repeat(np.arange(lo, hi), bands.shape[1]), np.ascontiguousarray(bands).ravel().view(np.int64)
    for kind, (owner, keys) in zip(MATTER_KINDS, matter_keys(names, terms, lo, hi, within)):
        yield kind, owner, keys


def sorted_keys(arrays):
    """A batch's keys of ``STORED_KINDS``, sorted, one kind at a time (tens of millions for a
    million letters): yields (kind, keys as int64 ascending, the row of each as int32), what
    an index shard keeps in ``KEY_ARRAYS``. ``arrays``: the batch's ``bands``,
    ``names``/``names_ptr`` and ``terms``/``terms_ptr``."""
    for kind, owner, keys in letter_keys(arrays["bands"], (arrays["names"], arrays["names_ptr"]),
                                         (arrays["terms"], arrays["terms_ptr"]), 0, len(arrays["bands"])):
        order = np.argsort(keys, kind="stable")
        keys, owner = keys[order], owner[order].astype(np.int32)
        del order  # a million letters' kind is tens of millions of keys: hold only what is yielded
        yield kind, keys, owner
        del keys, owner


def usable_blocks(sources, max_block):
    """The usable blocks of the keys the first of ``sources`` (the night's letters) holds.

    ``sources``: (keys sorted ascending, positions of the entries, position offset) for the
    new letters first, then for each index shard (shard rows and the shard's first
    position). A key is usable when it holds 2 to ``max_block`` entries in all (a key held by
    more letters is too generic to block on: a township and 问题, a placeholder name,
    boilerplate); only its entries are read from the sorted arrays, found by binary search.

    Returns (block number, position) of the kept entries."""
    new = np.asarray(sources[0][0])
    labels = new[np.concatenate(([True], new[1:] != new[:-1]))] if len(new) else new
    total = np.zeros(len(labels), dtype=np.int64)
    for keys, _, _ in sources:  # counted first, source by source: an index has a shard per night
        total += np.searchsorted(keys, labels, side="right") - np.searchsorted(keys, labels, side="left")
    kept = np.flatnonzero((total >= 2) & (total <= max_block))
    labels = labels[kept]
    blocks, positions = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for keys, rows, offset in sources:
        source, index = index_ranges(np.searchsorted(keys, labels, side="left"),
                                     np.searchsorted(keys, labels, side="right"))
        blocks.append(kept[source])
        positions.append(np.asarray(rows[index], dtype=np.int64) + offset)
    return np.concatenate(blocks), np.concatenate(positions)
