"""Scoring, the third step of dedupe: the evidence, P(same matter) and relation of each
candidate pair.

Evidence: ``pipeline.dedup.evidence`` (TF-IDF cosine, shared specific names, titles, days
apart, same petitioner ...), turned into P(same matter) by the match model
(``pipeline.dedup.matcher``); character similarity (rapidfuzz ratio of the comparison texts)
says whether two texts are one letter. Relation, first that holds (a pair matching none is
not linked):

1. ``multi_addressed``: near-same text (similarity >= near_same_similarity, or the same
   text), different addressees, at most ``multi_addressed_window_days`` apart;
2. ``exact_copy``: the same text;
3. ``resend``: near-same text, same (or unknown) addressee;
4. ``repeat_petition``: same petitioner, one matter (P at least the model's threshold),
   within ``repeat_window_days``;
5. ``same_matter``: near-same text, or one matter within ``same_matter_window_days``.

A link's ``score`` is its P (1 for the same text), the weight cases are built on
(``pipeline.dedup.clustering``):
near-same texts about two places (one template sent for two estates) are linked as the same
letter, but weigh as little as the model finds them one matter. Letters without a date are compared whatever
the windows; letters without a petitioner identity are matched on content only (never
``repeat_petition``).

Every decision is about one pair of letters and depends on those two letters only, so N
nightly runs link exactly the pairs one run over all letters links.
"""
import functools
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz
from rapidfuzz.process import cpdist
from threadpoolctl import threadpool_limits

from pipeline import schema
from pipeline.dedup.arrays import arrow_strings, unique
from pipeline.dedup.candidates import Candidates
from pipeline.dedup.clustering import link_components
from pipeline.dedup.evidence import (VectorRows, evidence_ceiling, pair_evidence, same_names, shared_counts,
                                     tfidf_cosine)
from pipeline.dedup.index import joined_ends, link_ends
from pipeline.dedup.matter import load_tags
from pipeline.dedup.spark_blocking import spark_links
from pipeline.normalize import CJK
from pipeline.parallel import distributed_mapper, imap_chunks, release_memory

NO_LINK = ""
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

def relations(near, same_text, different_addressee, same_petitioner, days, same, settings):
    """The relation of each pair (``NO_LINK`` when none applies); arrays of equal length.
    ``same``: the match model says one matter. ``days`` is NaN when a letter has no date:
    every window then holds.
    """
    def within(window):
        return np.isnan(days) | (days <= window)

    rules = [
        (near & different_addressee & within(settings.multi_addressed_window_days), schema.MULTI_ADDRESSED),
        (same_text, schema.EXACT_COPY),
        (near & ~different_addressee, schema.RESEND),
        (same_petitioner & within(settings.repeat_window_days) & same, schema.REPEAT_PETITION),
        (near | (within(settings.same_matter_window_days) & same), schema.SAME_MATTER),
    ]
    return np.select([rule for rule, _ in rules], [name for _, name in rules], default=NO_LINK)


def match_probability(pool, a, b, matcher, settings, workers=1, chunk=50_000, floor=0.0):
    """P(same matter) of pairs ``a[i]``, ``b[i]``, and their TF-IDF cosine, ``chunk`` pairs at a
    time. The model scores the pairs worth it (cosine at least ``score_min_cosine``, or a shared
    specific name); the others are P 0. The same text is P 1 (one text is one letter, whatever
    its title).

    ``floor``: a pair with a cosine under ``near_min_cosine`` (never a near-same text) whose P
    cannot reach it is P 0 too, its costly evidence not computed: the model's P of its
    ``evidence_ceiling`` is under ``floor`` (when the model is ``bounded_by_ceiling``)."""
    probability, cosine = np.zeros(len(a)), np.zeros(len(a))
    for start in range(0, len(a), chunk):
        part = slice(start, start + chunk)
        # the part's letters' TF-IDF rows, copied once for the cosine and the evidence (a bounded
        # copy: a whole chunk of a first night's pairs reaches most of a million letters)
        rows = VectorRows(pool, np.concatenate((a[part], b[part])))
        cosine[part] = tfidf_cosine(pool, a[part], b[part], rows=rows)
        shared = shared_counts(pool, a[part], b[part])
        worth = (cosine[part] >= settings.score_min_cosine) | (shared > 0)
        if floor > 0 and matcher.bounded_by_ceiling:
            low = np.flatnonzero(worth & (cosine[part] < settings.near_min_cosine))
            ceiling = matcher.probability(evidence_ceiling(pool, a[part][low], b[part][low],
                                                           cosine=cosine[part][low], shared=shared[low]))
            worth[low[ceiling < floor]] = False
        if worth.any():
            scored = np.flatnonzero(worth) + start
            probability[scored] = matcher.probability(pair_evidence(
                pool, a[scored], b[scored], workers, cosine=cosine[scored], shared=shared[worth], rows=rows))
    return np.where(pool.bodies[a] == pool.bodies[b], 1.0, probability), cosine


def score_pairs(pool, a, b, settings, matcher, workers=1):
    """Evidence, P(same matter) (``matcher``: a ``Matcher``) and relation of candidate pairs;
    returns the linked ones, and the ``POSSIBLE`` ones (no relation, P at least
    ``possible_probability``), as a links frame."""
    # under the lower of the two a pair is neither a link nor possible, unless a near-same text
    floor = min(settings.possible_probability, matcher.threshold)
    probability, cosine = match_probability(pool, a, b, matcher, settings, workers, floor=floor)
    # near-same texts share their words: below near_min_cosine the ratio cannot reach
    # near_same_similarity in practice, and rapidfuzz is the costly step
    similarity = char_similarity(pool, a, b, cosine >= settings.near_min_cosine, settings.near_same_similarity,
                                 workers)
    days = np.abs(pool.days[a] - pool.days[b])
    same_text = pool.bodies[a] == pool.bodies[b]
    near = same_text | (similarity >= settings.near_same_similarity)
    # a near-same text naming the same things is one letter sent again, P 1 as the same text
    # is: a line added (a date, a greeting) leaves the model unsure of a text naming nothing
    # specific; two letters of one template name two estates, two shops
    again = np.flatnonzero(near & ~same_text)
    probability[again[same_names(pool, a[again], b[again])]] = 1.0
    addressee_a, addressee_b = pool.addressees[a], pool.addressees[b]
    different_addressee = (addressee_a >= 0) & (addressee_b >= 0) & (addressee_a != addressee_b)
    same_petitioner = (pool.keys[a] >= 0) & (pool.keys[a] == pool.keys[b])
    relation = relations(near, same_text, different_addressee, same_petitioner, days,
                         probability >= matcher.threshold, settings)
    relation = np.where((relation == NO_LINK) & (probability >= settings.possible_probability), schema.POSSIBLE,
                        relation)
    linked = relation != NO_LINK
    a, b, similarity = a[linked], b[linked], similarity[linked]
    # the evidence of the links not compared yet (possible pairs are not shown: not compared)
    missing = np.isnan(similarity) & (relation[linked] != schema.POSSIBLE)
    similarity[missing] = char_similarity(pool, a[missing], b[missing], np.ones(missing.sum(), dtype=bool),
                                          workers=workers)
    return links_frame(pool, a, b, relation[linked], probability[linked], cosine[linked], similarity, settings)


def links_frame(pool, a, b, relation, probability, cosine, similarity=None, settings=None):
    """Pairs ``a[i]``, ``b[i]`` of pool positions as a links frame, the earlier letter first:
    their ``relation``, P, cosine, character ``similarity`` (NaN when not given) and, with the
    dedupe ``settings``, the names they share."""
    earlier = pool.rank[a] <= pool.rank[b]
    first, second = np.where(earlier, a, b), np.where(earlier, b, a)
    ids = pool.letters[schema.LETTER_ID].array
    names = shared_names(pool, first, second, settings) if settings else np.full(len(a), "", dtype=object)
    return pd.DataFrame({
        schema.LETTER_A: ids.take(first), schema.LETTER_B: ids.take(second),
        schema.RELATION: pd.array(np.asarray(relation, dtype=object), dtype="str"),
        schema.LINK_SCORE: np.round(probability, 3),
        schema.SHARED_NAMES: pd.array(names, dtype="str"),
        schema.CHAR_SIMILARITY: np.round(np.full(len(a), np.nan) if similarity is None else similarity, 3),
        schema.TFIDF_COSINE: np.round(cosine, 3),
        schema.DAYS_APART: np.round(np.abs(pool.days[a] - pool.days[b]), 1),
        schema.SAME_PETITIONER: (pool.keys[a] >= 0) & (pool.keys[a] == pool.keys[b]),
    }, columns=list(schema.LINK_COLUMNS))


def find_links(pool, settings, matcher, workers=1):
    """Links of the pool's new letters. Candidate pairs are listed and scored chunk by chunk
    (``chunk_pairs`` at a time), ``workers`` chunks at once in forked worker processes
    (``parallel.imap_chunks``: they inherit the pool, whose large arrays are memory-mapped), so
    memory holds a few chunks' pairs, not all of them. On the Spark engine (inside
    ``parallel.distributed``) the pairs are formed and scored in Spark (``spark_blocking``)."""
    empty = np.zeros(0, dtype=np.int64)
    if pool.history == len(pool.letters):
        return score_pairs(pool, empty, empty, settings, matcher)
    if (mapper := distributed_mapper()) is not None:
        return spark_links(mapper, pool, settings, functools.partial(score_pairs, settings=settings, matcher=matcher))
    candidates = Candidates(pool, settings)

    def links(bounds):
        scored = score_pairs(pool, *candidates.pairs(*bounds), settings, matcher)
        release_memory()
        return scored
    # processes, not threads, whose Python parts held each other up on the GIL (a million
    # letters' links: 221 s against 249 s); OpenMP threads of the trees' predict inside each
    # worker would only compete with the workers
    with threadpool_limits(1):
        frames = list(imap_chunks(links, candidates.chunks(settings.chunk_pairs), processes=max(1, workers)))
    return pd.concat(frames, ignore_index=True)


# --- pairs inside a case -----------------------------------------------------------------------

def within_pairs(pool, scored, settings, matcher, workers=1, chunk=200_000, ends=None):
    """P(same matter) of the pairs of letters that the links and possible pairs put in one
    component of 3 to ``case_pairs_max_letters`` letters and that ``scored`` (links frames of
    every pair scored so far: the index's and the night's) lacks. Cases weigh every pair of their letters
    (``clustering``): these are the pairs no candidate block listed, or listed under
    ``possible_probability``.

    ``ends``: for each frame of ``scored``, the pool positions of its letters when known
    (``DedupeIndex.link_ends``), else None (found from the ids).

    Returns a links-shaped frame with relation ``IN_CASE`` (a scored pair, not a link).
    """
    ids = arrow_strings(pool.letters[schema.LETTER_ID])
    total = len(ids)
    kept = [(frame, known or link_ends(frame, ids)) for frame, known in zip(scored, ends or [None] * len(scored))
            if len(frame)]
    scored, ends = [frame for frame, _ in kept], [end for _, end in kept]
    a, b = joined_ends(*ends)
    listed = np.concatenate([(frame[schema.RELATION] != schema.IN_CASE).to_numpy() for frame in scored]
                            + [np.zeros(0, dtype=bool)])
    # a first night's millions of links are all listed: not copied again
    component, size = link_components(total, *((a, b) if listed.all() else (a[listed], b[listed])))
    # a component without a new letter is as it was: all its pairs were scored when it last grew
    touched = np.unique(component[pool.is_new])
    chosen = touched[(size[touched] >= 3) & (size[touched] <= settings.case_pairs_max_letters)]
    members = np.flatnonzero(np.isin(component, chosen))
    members = members[np.argsort(component[members], kind="stable")]
    bounds = np.searchsorted(component[members], chosen)
    first, second = [], []
    for start, count in zip(bounds.tolist(), size[chosen].tolist()):
        i, j = np.triu_indices(count, 1)
        first.append(members[start + i])
        second.append(members[start + j])
    first = np.concatenate(first) if first else np.zeros(0, dtype=np.int64)
    second = np.concatenate(second) if second else np.zeros(0, dtype=np.int64)
    code = np.minimum(first, second) * total + np.maximum(first, second)
    inside = np.isin(component[a], chosen)
    code = code[~np.isin(code, np.minimum(a[inside], b[inside]) * total + np.maximum(a[inside], b[inside]))]
    frames = [pairs_frame(pool, code[start:start + chunk] // total, code[start:start + chunk] % total, matcher,
                          settings, workers) for start in range(0, len(code), chunk)]
    none = np.zeros(0, dtype=np.int64)
    return pd.concat(frames, ignore_index=True) if frames else pairs_frame(pool, none, none, matcher, settings)


def pairs_frame(pool, a, b, matcher, settings, workers=1):
    """Scored pairs (not links) as a links frame: P and the evidence links show."""
    probability, cosine = match_probability(pool, a, b, matcher, settings, workers)
    return links_frame(pool, a, b, np.full(len(a), schema.IN_CASE), probability, cosine)
