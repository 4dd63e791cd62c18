"""Scoring, the third step of dedupe: the scores and the relation of each candidate pair.

Scores: character similarity (rapidfuzz ratio of the comparison texts), TF-IDF cosine,
shared specific names (``pipeline.dedup.matter``), days apart. Relation, first that holds
(a pair matching none is not linked):

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
numbers that pin a matter down (12.5万元, 2731号, 2022年6月23日). Matter score (repeat
petitions) = TF-IDF cosine + ``name_weight`` x shared names (at most ``max_names_counted``).
Letters without a date are compared whatever the windows; letters without a petitioner
identity are matched on content only (never ``repeat_petition``).

Every decision is about one pair of letters and depends on those two letters only, so N
nightly runs link exactly the pairs one run over all letters links.
"""
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz
from rapidfuzz.process import cpdist

from pipeline import schema
from pipeline.dedup.arrays import csr_rows, unique
from pipeline.dedup.candidates import Candidates
from pipeline.dedup.matter import load_tags
from pipeline.normalize import CJK
from pipeline.parallel import release_memory

NO_LINK = ""
NEAR_RELATIONS = (schema.EXACT_COPY, schema.MULTI_ADDRESSED, schema.RESEND)  # scored by text similarity
# a keyed hash of a masked person's name after its surname (normalize's masked_names: 张:3f9a…)
PERSON_KEY = re.compile(rf"([{CJK}]{{1,2}}):[0-9a-f]{{16}}")


# --- similarities -------------------------------------------------------------------------------

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
        code, inverse = unique(body_a[todo].astype(np.int64) * total + body_b[todo], inverse=True)
        left, right = pool.first_of_body[code // total], pool.first_of_body[code % total]
        involved = unique(np.concatenate((left, right)))
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
    involved = unique(b)
    names_b, offsets_b = csr_rows(values, pointers, involved)
    owner = np.repeat(involved, np.diff(offsets_b)).astype(np.uint64)
    table = np.sort((owner << np.uint64(40)) | (names_b >> np.uint64(24)))
    query = (b[pair].astype(np.uint64) << np.uint64(40)) | (names_a >> np.uint64(24))
    found = np.searchsorted(table, query)
    hit = (found < len(table)) & (table[np.minimum(found, len(table) - 1)] == query)
    return np.bincount(pair[hit], minlength=len(a))


def shown_names(names, settings, mask_char="某"):
    """``names`` (a pyarrow string array) as evidence may show them: people's full names (a
    surname, then one or two characters, no dictionary word and no place suffix: the
    ``full_names`` kind of ``NameExtractor``) masked as surname + ``mask_char`` (雷伟 → 雷某),
    and the keyed hashes of masked names (张:3f9a…) as their surname + ``mask_char``, so links
    never carry a petitioner's name nor a hash; every other name as it is."""
    person = re.compile(rf"[{re.escape(settings.surnames)}][{CJK}]{{1,2}}")
    suffixes = tuple(settings.name_suffixes) + tuple(settings.name_boundary_suffixes)
    tags = load_tags()

    def shown(name):
        if key := PERSON_KEY.fullmatch(name):
            return key.group(1) + mask_char
        if person.fullmatch(name) and mask_char not in name and name not in tags and not name.endswith(suffixes):
            return name[0] + mask_char
        return name
    return pa.array([shown(name) for name in names.to_pylist()], pa.large_string())


def shared_names(pool, first, second, settings):
    """The names (specific ones, masked people, organisation terms) letters ``first[i]`` and
    ``second[i]`` share, as evidence shows them (:func:`shown_names`): sorted and "、"-joined,
    '' when none (a pyarrow string array). Which names are shared is decided on the names
    themselves; only the written form is masked. Computed with arrow and numpy, not per pair
    in Python: scoring threads share the GIL."""
    lists_a, lists_b = pool.name_lists.take(first), pool.name_lists.take(second)
    names_a, names_b = pc.list_flatten(lists_a), pc.list_flatten(lists_b)
    distinct = pc.unique(pa.concat_arrays([names_a, names_b]))
    size = len(distinct) + 1

    def keys(lists, names):
        pairs = pc.list_parent_indices(lists).to_numpy().astype(np.int64)
        return pairs * size + pc.index_in(names, distinct).to_numpy(zero_copy_only=False)
    both = np.sort(np.concatenate((unique(keys(lists_a, names_a)), unique(keys(lists_b, names_b)))))
    shared = both[1:][both[1:] == both[:-1]]  # np.intersect1d, without np.unique's slow hashing
    # the shown forms, in code point order (as sorted() has it); two names may show as one (雷伟, 雷某)
    shown = shown_names(distinct, settings)
    forms = pc.unique(shown)
    forms = forms.take(pc.array_sort_indices(forms))
    form_of = pc.index_in(shown, forms).to_numpy(zero_copy_only=False)
    shared = unique((shared // size) * size + form_of[shared % size])
    names = forms.take(shared % size)
    named = pc.not_equal(names, "")
    pair = (shared // size)[named.to_numpy(zero_copy_only=False)]
    offsets = np.searchsorted(pair, np.arange(len(first) + 1)).astype(np.int32)
    return pc.binary_join(pa.ListArray.from_arrays(offsets, names.filter(named)), pa.scalar("、", pa.large_string()))


# --- relations and links ----------------------------------------------------------------------

def relations(near, same_text, different_addressee, same_petitioner, days, matter, shared, cosine, settings):
    """The relation of each pair (``NO_LINK`` when none applies); arrays of equal length.

    ``days`` is NaN when a letter has no date: every window then holds.
    """
    def within(window):
        return np.isnan(days) | (days <= window)

    rules = [
        (near & different_addressee & within(settings.multi_addressed_window_days), schema.MULTI_ADDRESSED),
        (same_text, schema.EXACT_COPY),
        (near & ~different_addressee, schema.RESEND),
        (same_petitioner & within(settings.repeat_window_days) & (near | (matter >= settings.repeat_min_score)),
         schema.REPEAT_PETITION),
        (near | (within(settings.same_matter_window_days)
                 & (((shared >= 2) & (cosine >= settings.same_matter_two_names_cosine))
                    | ((shared == 1) & (cosine >= settings.same_matter_one_name_cosine)))), schema.SAME_MATTER),
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
    near_relation = np.isin(relation[linked], NEAR_RELATIONS)
    return pd.DataFrame({
        schema.LETTER_A: ids.take(first), schema.LETTER_B: ids.take(second),
        schema.RELATION: relation[linked],
        schema.LINK_SCORE: np.round(np.where(near_relation, similarity, np.minimum(matter[linked], 1.0)), 3),
        schema.SHARED_NAMES: pd.array(shared_names(pool, first, second, settings), dtype="str"),
        schema.CHAR_SIMILARITY: np.round(similarity, 3),
        schema.TFIDF_COSINE: np.round(cosine[linked], 3),
        schema.DAYS_APART: np.round(days[linked], 1),
        schema.SAME_PETITIONER: same_petitioner[linked],
    }, columns=list(schema.LINK_COLUMNS))


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
