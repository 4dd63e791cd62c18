"""Features of letters, the first step of dedupe: what the index keeps for each letter.

For each letter: the hash of its comparison text (``comparison_texts``), the LSH band keys
of its MinHash signature (``pipeline.dedup.minhash``), the hashes of its specific names and
its top TF-IDF terms (blocking keys and evidence, ``pipeline.dedup.matter``), its TF-IDF
vector, its comparison text and its length, its title and the names the title holds.
``featurize`` computes them chunk by chunk in forked worker processes (``pipeline.parallel``)
and saves them into a folder as they come: a ``Batch`` of the index.
"""
import itertools

import numpy as np
import pandas as pd

from pipeline import schema
from pipeline.dedup.arrays import csr_pointers, text_hashes
from pipeline.dedup.batch import BatchWriter
from pipeline.dedup.matter import NameExtractor, TermVectorizer, top_entries
from pipeline.dedup.minhash import MinHasher, band_keys, lsh_params
from pipeline.parallel import imap_chunks, release_memory


def comparison_texts(clean_texts, min_body_chars=20):
    """The text letters are compared on: the body (``clean_text`` after its title line),
    whitespace removed, or title + body when the body is shorter than ``min_body_chars``."""
    out = []
    for text in clean_texts:
        title, _, body = text.partition("\n")
        body = "".join(body.split())
        out.append(body if len(body) >= min_body_chars else "".join(title.split()) + body)
    return out


def titles_of(clean_texts):
    """The title of each letter: the first line of its ``clean_text``, spaces removed."""
    return ["".join(text.partition("\n")[0].split()) for text in clean_texts]


def title_words(title, tokens):
    """The leading words of ``tokens`` (space-joined; punctuation and stopwords left out by
    segment) found in order in ``title``: the title's words, none of the body's."""
    words, cursor = [], 0
    for word in tokens.split():
        found = title.find(word, cursor)
        if found < 0:
            break
        words.append(word)
        cursor = found + len(word)
    return words


def top_terms(vectors, count):
    """The ``count`` highest-weighted term columns of each row of a CSR matrix of
    non-negative weights, as a CSR layout (uint64 values, pointers); ties go to the lower
    column (the matrix's indices are sorted in place first)."""
    vectors.sort_indices()
    return (vectors.indices[top_entries(vectors, count)].astype(np.uint64),
            csr_pointers(np.minimum(np.diff(vectors.indptr), count)))


def with_people(tokens, masked):
    """Each letter's ``tokens`` with its ``masked_names`` (keyed hashes of the people's names
    normalize masked) as terms: the name's word weighed in the TF-IDF vector before masking,
    shared only by letters naming the same person; the mask left in the text (张某) is a word
    of its own, as it was for names masked by the writer."""
    return [f"{words} {people.replace('|', ' ')}" if people else words for words, people in zip(tokens, masked)]


def name_hashes(names_per_letter):
    """uint64 hashes of each letter's names, as a CSR layout (values, pointers)."""
    hashes = text_hashes([name for names in names_per_letter for name in names])
    return hashes, csr_pointers(np.fromiter(map(len, names_per_letter), dtype=np.int64, count=len(names_per_letter)))


class Featurizer:
    """Compute the features the index keeps for each letter.

    Parameters
    ----------
    minhasher : MinHasher
    vectorizer : TermVectorizer
    names : NameExtractor
    bands, rows : int
        LSH banding of the signatures.
    min_body_chars, compare_chars : int
        See ``comparison_texts``; texts are cut to ``compare_chars`` for shingling and
        character similarity (the hash of the exact text uses all of it).
    block_terms : int
        Highest-weighted TF-IDF terms of a letter that, with its place names, make its
        same-matter blocking keys.
    title_term_min_idf : float
        A title's words of 2+ characters with at least this IDF are its terms (高铁, 西站;
        not 加快, 建设): match evidence, looked for in the other letter's TF-IDF terms.
    """

    def __init__(self, minhasher, vectorizer, names, *, bands, rows, min_body_chars=20, compare_chars=3000,
                 block_terms=5, title_term_min_idf=7.0):
        self.minhasher, self.vectorizer, self.names = minhasher, vectorizer, names
        self.bands, self.rows = bands, rows
        self.min_body_chars, self.compare_chars, self.block_terms = min_body_chars, compare_chars, block_terms
        self.title_term_min_idf = title_term_min_idf

    @classmethod
    def from_config(cls, config):
        """The featurizer the ``dedupe`` settings describe."""
        c = config.dedupe
        bands, rows = lsh_params(c.lsh_threshold, c.num_perm)
        vectorizer = TermVectorizer(c.tfidf_features, c.top_terms)
        return cls(MinHasher(c.num_perm, c.shingle_size, c.seed), vectorizer,
                   NameExtractor.from_config(config, vectorizer.word_idf), bands=bands, rows=rows,
                   min_body_chars=c.min_body_chars, compare_chars=c.compare_chars, block_terms=c.block_terms,
                   title_term_min_idf=c.title_term_min_idf)

    def arrays(self, clean_texts, tokens, days=None, masked=None):
        """Features of one chunk of letters: (dict of arrays, places, others). ``days``: the
        letters' dates (datetime64[D], NaT when unknown), or None; ``masked``: their
        ``masked_names`` (keyed hashes of the people's names normalize masked), or None."""
        full = comparison_texts(clean_texts, self.min_body_chars)
        texts = [text[:self.compare_chars] for text in full]
        days = [None] * len(clean_texts) if days is None else [None if np.isnat(d) else d for d in days]
        masked = [""] * len(clean_texts) if masked is None else masked
        found_numbers = [self.names.numbers(clean, day) for clean, day in zip(clean_texts, days)]
        found = [self.names.extract(clean, words, day, people, numbers)
                 for clean, words, day, people, numbers in zip(clean_texts, tokens, days, masked, found_numbers)]
        places = [p for p, _ in found]
        # amounts, counts and case numbers (a reminder quotes its first letter's date: dates do not count)
        numbers, numbers_ptr = name_hashes([sorted(n for n in found if not n.endswith("日")) for found in found_numbers])
        titles = titles_of(clean_texts)
        # the names a title holds: the matter's place, when it gives one (match evidence)
        title_names = [self.names.extract(title, "", day)[0] for title, day in zip(titles, days)]
        idf, median = self.vectorizer.word_idf, self.vectorizer.median_idf
        title_terms = self.vectorizer.columns([" ".join(dict.fromkeys(
            word for word in title_words(title, words) if len(word) >= 2 and idf.get(word, median) >= self.title_term_min_idf))
            for title, words in zip(titles, tokens)])
        signatures = self.minhasher.signatures(texts)
        vectors = self.vectorizer.transform(with_people(tokens, masked))
        encoded = [text.encode("utf-8") for text in texts]
        # specific names: the evidence and blocking keys (masked people and terms are too common)
        names, names_ptr = name_hashes(places)
        title_names, title_names_ptr = name_hashes(title_names)
        encoded_titles = [title.encode("utf-8") for title in titles]
        terms, terms_ptr = top_terms(vectors, self.block_terms)
        arrays = {
            schema.BODY_HASH: text_hashes(full),
            "bands": band_keys(signatures, self.bands, self.rows),
            "names": names, "names_ptr": names_ptr,
            "title_names": title_names, "title_names_ptr": title_names_ptr,
            "numbers": numbers, "numbers_ptr": numbers_ptr,
            "title_terms": title_terms.indices.astype(np.int32), "title_terms_ptr": title_terms.indptr.astype(np.int64),
            "terms": terms, "terms_ptr": terms_ptr,
            "vec_data": vectors.data.astype(np.float32), "vec_indices": vectors.indices.astype(np.int32),
            "vec_ptr": vectors.indptr.astype(np.int64),
            "text": np.frombuffer(b"".join(encoded), dtype=np.uint8), "text_ptr": csr_pointers(list(map(len, encoded))),
            "title": np.frombuffer(b"".join(encoded_titles), dtype=np.uint8),
            "title_ptr": csr_pointers(list(map(len, encoded_titles))),
            "chars": np.fromiter(map(len, texts), dtype=np.int32, count=len(texts)),
        }
        return arrays, ["|".join(p) for p in places], ["|".join(o) for _, o in found]


def featurize(letters, chunks, featurizer, directory, processes=1, progress=None):
    """Features of ``letters`` (a DataFrame with letter id, date, addressee, petitioner key
    and optionally topics and masked names) whose texts come in ``chunks``: (clean_texts,
    tokens) lists in the order of ``letters``, read as they are needed, featurized in
    ``processes`` workers and written into the new folder ``directory`` as they come
    (``batch.BatchWriter``: a million letters' arrays are not held in memory).

    Returns a ``Batch`` memory-mapped from ``directory``, whose ``letters`` frame holds the
    index columns. ``progress``, if given, is called with the number of letters finished after
    each chunk.
    """
    days = pd.to_datetime(letters[schema.RECEIVED_AT]).to_numpy(dtype="datetime64[D]")
    masked = (letters[schema.MASKED_NAMES].fillna("").astype(str).tolist() if schema.MASKED_NAMES in letters
              else [""] * len(letters))

    def with_days(chunks):
        done = 0
        for texts, tokens in chunks:
            yield texts, tokens, days[done:done + len(texts)], masked[done:done + len(texts)]
            done += len(texts)
    results = imap_chunks(lambda chunk: featurizer.arrays(*chunk), with_days(chunks), processes)
    first = next(results, None) or featurizer.arrays([], [])  # no letters: still the arrays' types
    writer, hashes, places, others = BatchWriter(directory), [], [], []
    for arrays, chunk_places, chunk_others in itertools.chain([first], results):
        hashes.append(arrays.pop(schema.BODY_HASH))
        writer.append(arrays)
        places += chunk_places
        others += chunk_others
        if progress:
            progress(len(chunk_places))
    release_memory()
    frame = pd.DataFrame({
        schema.LETTER_ID: letters[schema.LETTER_ID].astype(str).to_numpy(),
        schema.RECEIVED_AT: pd.to_datetime(letters[schema.RECEIVED_AT]).astype("datetime64[ns]").to_numpy(),
        schema.ADDRESSEE: letters[schema.ADDRESSEE].fillna("").astype(str).to_numpy(),
        schema.PETITIONER_KEY: letters[schema.PETITIONER_KEY].fillna("").astype(str).to_numpy(),
        schema.BODY_HASH: np.concatenate(hashes),
        schema.PLACES: np.array(places, dtype=object),
        schema.OTHERS: np.array(others, dtype=object),
        schema.TOPICS: (letters[schema.TOPICS].fillna("").astype(str).to_numpy()
                        if schema.TOPICS in letters else ""),
    })
    return writer.close(frame)
