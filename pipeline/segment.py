"""Segment: cut ``clean_text`` into words with jieba's dictionary and the petition dictionary.

* Dictionaries: ``corpora/dict/petition_dict.txt`` (petition terms jieba would split:
  一信多投, 征地拆迁, 林权证 ...), ``corpora/dict/stopwords.txt``, plus any extra jieba user
  dictionaries (``--dict FILE`` or ``segment.extra_dicts`` in the configuration), e.g. the
  message board's ``place_words.txt``.
* The cutter is rjieba (jieba-rs), which carries jieba's main dictionary; the words are those of
  ``jieba.Tokenizer.lcut`` with the same dictionaries (tests/test_segment.py pins it on the
  sample and the board), see ``JiebaCutter``. jieba itself is only read for its data file.
* Parallel over forked processes. The dictionaries are loaded before the workers are forked,
  so every worker inherits them.
* A cache keyed by the hash of the text and of the dictionaries: a nightly run segments only
  letters it has not seen, and changing a dictionary invalidates the cache.

Output: ``tokens``, the words joined by single spaces, stopwords and punctuation removed.
"""
import collections
import hashlib
import importlib.metadata
import importlib.util
import re
import time
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import rjieba
from tqdm import tqdm

from pipeline import parallel, schema
from pipeline.engine import on_configured_engine
from pipeline.errors import PetitionError
from pipeline.lookup import is_in
from pipeline.rundir import stage, write_parquet

# jieba's main dictionary, the one rjieba has built in (found without importing jieba)
JIEBA_DICT = Path(importlib.util.find_spec("jieba").submodule_search_locations[0]) / "dict.txt"
# what changes the words: jieba's data, rjieba's cutting (both pinned in setup.cfg)
_LIBRARY_VERSIONS = "|".join(f"{name} {importlib.metadata.version(name)}" for name in ("jieba", "rjieba"))
_USER_LINE = re.compile(r"^(.+?)( [0-9]+)?( [a-z]+)?$")  # jieba's re_userdict
_HMM_ASCII = re.compile(r"([a-zA-Z0-9]+(?:\.\d+)?%?)")  # jieba's finalseg.re_skip
_SURPLUS = "\ue000"  # a private-use character: never inside a block the cutter looks up
# rare Chinese characters (extensions A, B..., compatibility) jieba leaves out of its blocks
_RARE_HAN = re.compile("([\u3400-\u4DBF\u9FD6-\u9FFF\uF900-\uFAFF\U00020000-\U0003FFFF])")


def text_hash(text):
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def _is_punctuation(token):
    """True for tokens made only of punctuation, symbols, spaces or control characters."""
    return all(unicodedata.category(ch)[0] in "PSZC" for ch in token)


def read_user_dict(path):
    """The entries of a jieba user dictionary, parsed as ``jieba.Tokenizer.load_userdict`` does.

    Returns a list of (word, frequency or None, tag or None); a missing frequency is left to
    the cutter to suggest, as jieba does.
    """
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PetitionError(f"{path}: dictionary file must be UTF-8 ({exc.reason})") from exc
    entries = []
    for line in text.split("\n"):  # jieba reads bytes lines and strips ASCII whitespace only
        line = line.strip(" \t\n\r\x0b\x0c").lstrip("\ufeff")
        if line:
            word, freq, tag = _USER_LINE.match(line).groups()
            entries.append((word, int(freq) if freq else None, tag.strip() if tag else None))
    return entries


def _main_dictionary():
    """{word: frequency (bytes)} of jieba's main dictionary, and the frequency it counts twice
    (jieba 0.42.1 lists B超 on two lines and adds both to its total)."""
    fields = JIEBA_DICT.read_bytes().split()  # "word freq tag" lines
    words, freqs = fields[0::3], fields[1::3]
    frequency = dict(zip(words, freqs))
    repeated = sum(map(int, freqs)) - sum(map(int, frequency.values())) if len(frequency) < len(words) else 0
    return frequency, repeated


class JiebaCutter:
    """jieba's precise mode on rjieba: ``lcut(text)`` is ``jieba.Tokenizer.lcut(text, HMM=hmm)``
    with the same user dictionaries, word for word.

    rjieba cuts as jieba does but for four things, mended here:

    * jieba adds every dictionary line's frequency to its total, also a word's it redefines;
      rjieba replaces the old frequency. Word probabilities are frequency / total, so the
      difference is given to a word no text contains (``_SURPLUS``).
    * jieba's HMM splits a run of non-Chinese characters around its letters and numbers
      (``_HMM_ASCII``): 80-90 → 80, -, 90; baidu.com → baidu, ., com. rjieba's keeps the run
      whole; ``pieces`` splits it.
    * jieba's blocks of Chinese text end at rare characters (outside U+4E00..U+9FD5), which
      stand alone; rjieba's go on. ``cut`` cuts the text between them.
    * A user word of frequency 0 is never a word for jieba (its HMM splits it too); rjieba
      would still offer it, so it is not added, and ``pieces`` splits it.

    Parameters
    ----------
    user_dicts : list of path
        jieba user dictionaries, loaded in order.
    hmm : bool
        Runs of single characters not in the dictionary go to the HMM (names, places).
    """

    def __init__(self, user_dicts=(), hmm=True):
        self.hmm = hmm
        self._jieba = rjieba.Jieba()
        self._force_split = set()
        frequency, surplus = _main_dictionary()
        for path in user_dicts:
            for word, freq, tag in read_user_dict(path):
                key = word.encode("utf-8")
                if freq is None:  # suggested from the total, which must be jieba's at this point
                    self._jieba.add_word(_SURPLUS, surplus, None)
                elif freq == 0:
                    self._force_split.add(word)
                    if key not in frequency:
                        continue
                surplus += int(frequency.get(key, 0))
                frequency[key] = self._jieba.add_word(word, freq, tag)
        self._jieba.add_word(_SURPLUS, surplus, None)

    def cut(self, text):
        """rjieba's words of ``text`` (list of str); ``pieces`` turns each into jieba's."""
        if _RARE_HAN.search(text) is None:
            return self._jieba.cut(text, self.hmm)
        return [word for part in _RARE_HAN.split(text) if part for word in self._jieba.cut(part, self.hmm)]

    def pieces(self, token):
        """jieba's words for one of rjieba's (tuple of str; usually the token alone)."""
        if self.hmm and len(token) > 1:
            if token in self._force_split:
                return tuple(token)
            if token.isascii() and not token.isalnum() and not self._jieba.has_word(token):
                return tuple(piece for piece in _HMM_ASCII.split(token) if piece)
        return (token,)

    def lcut(self, text):
        """The words of ``text`` (list of str), as ``jieba.Tokenizer.lcut(text, HMM=self.hmm)``."""
        return [piece for token in self.cut(text) for piece in self.pieces(token)]


class _Kept(dict):
    """{rjieba token: the words kept of it, space-joined ('' if none)}, filled on first sight;
    the vocabulary is bounded, and a lookup is cheaper than filtering again."""

    def __init__(self, cutter, keep):
        super().__init__()
        self._cutter, self._keep = cutter, keep

    def __missing__(self, token):
        self[token] = kept = " ".join(filter(self._keep, self._cutter.pieces(token)))
        return kept


class Segmenter:
    """jieba words with user dictionaries, stopwords, punctuation and short tokens removed.

    Parameters
    ----------
    user_dicts : list of path
        jieba user dictionaries (``word [freq [tag]]`` per line).
    stopwords : path, optional
        One word per line; removed from the output.
    hmm : bool
        Let jieba's HMM find words missing from the dictionaries (names, places).
    min_token_chars : int
        Shorter tokens are dropped.
    """

    def __init__(self, user_dicts=(), stopwords=None, hmm=True, min_token_chars=1):
        self.user_dicts = [Path(p) for p in user_dicts]
        self.stopwords_path = Path(stopwords) if stopwords else None
        self.hmm, self.min_token_chars = hmm, min_token_chars
        for path in self.user_dicts + ([self.stopwords_path] if self.stopwords_path else []):
            if not path.is_file():
                raise PetitionError(f"{path}: dictionary file not found")
        self._cutter = None
        self._kept = None

    @classmethod
    def from_config(cls, config, extra_dicts=()):
        dict_dir = config.paths.dict_dir
        return cls(user_dicts=[dict_dir / "petition_dict.txt", *config.segment.extra_dicts, *extra_dicts],
                   stopwords=dict_dir / "stopwords.txt", hmm=config.segment.hmm,
                   min_token_chars=config.segment.min_token_chars)

    def fingerprint(self):
        """Hash of everything that changes the output: dictionaries, stopwords, settings, libraries."""
        digest = hashlib.sha256(f"{_LIBRARY_VERSIONS}|{self.hmm}|{self.min_token_chars}".encode())
        for path in self.user_dicts + ([self.stopwords_path] if self.stopwords_path else []):
            digest.update(path.read_bytes())
        return digest.hexdigest()[:16]

    def load(self):
        """Read the dictionaries now (before forking workers, which then inherit them); returns self."""
        if self._cutter is None:
            words = self.stopwords_path.read_text(encoding="utf-8").split() if self.stopwords_path else []
            stopwords, min_chars = frozenset(words), self.min_token_chars

            def keep(word):
                return word not in stopwords and len(word) >= min_chars and not _is_punctuation(word)
            self._cutter = JiebaCutter(self.user_dicts, self.hmm)
            self._kept = _Kept(self._cutter, keep)
        return self

    def __getstate__(self):
        # the loaded dictionaries are not pickled: a Spark worker loads its own on first use
        return self.__dict__ | {"_cutter": None, "_kept": None}

    def cut_joined(self, texts):
        """Segment each text; return the kept words joined by spaces (list of str)."""
        self.load()
        kept, cut = self._kept.__getitem__, self._cutter.cut
        return [" ".join(filter(None, map(kept, cut(text)))) for text in texts]

    def cut(self, text):
        """Return the words of ``text`` (list of str), stopwords and punctuation removed."""
        return self.cut_joined([text])[0].split()


def segment_texts(texts, segmenter, processes=1, chunk_size=2000, progress=None):
    """Segment ``texts`` (list of str) in ``processes`` worker processes.

    Returns a list of space-joined token strings, in input order. ``progress``, if given,
    is called with the number of texts finished after each chunk.
    """
    segmenter.load()  # here, so that every forked worker inherits the dictionaries
    return parallel.map_chunks(segmenter.cut_joined, texts, processes, chunk_size, progress)


class SegmentCache:
    """Segmented texts stored as Parquet shards under ``directory/<fingerprint>/``.

    A shard is added per run with the texts that run segmented. A lookup reads every shard's
    hashes, and the tokens only of the rows it wants: a night's new letters do not read a
    million letters' tokens.
    """

    def __init__(self, directory, fingerprint):
        self.directory = Path(directory) / fingerprint
        self._hashes = {}  # each shard's hash column, read once per process (a run looks up batch by batch)

    def lookup(self, hashes):
        """Return {hash: tokens} for the hashes already in the cache (a later shard wins)."""
        found = {}
        for shard in sorted(self.directory.glob("*.parquet")):
            if shard not in self._hashes:
                self._hashes[shard] = pq.read_table(shard, columns=["hash"]).column("hash")
            rows = np.flatnonzero(is_in(self._hashes[shard], hashes))
            if len(rows):  # the hashes are in memory: only the tokens column is read
                tokens = pq.read_table(shard, columns=[schema.TOKENS]).column(schema.TOKENS).take(rows)
                found.update(zip(self._hashes[shard].take(rows).to_pylist(), tokens.to_pylist()))
        return found

    def add(self, hashes, tokens):
        if not hashes:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{hashes[0]}.parquet"
        write_parquet(pd.DataFrame({"hash": hashes, schema.TOKENS: tokens}), self.directory / name)
        self._hashes[self.directory / name] = pa.array(hashes, pa.large_string())


def segment(letters, segmenter, cache=None, processes=1, chunk_size=2000, progress=None):
    """Add ``tokens`` to ``letters`` (the normalize output).

    Returns
    -------
    segmented : DataFrame
    stats : dict
        ``cached`` (letters served from the cache), ``segmented`` (letters cut now),
        ``characters`` (characters cut now).
    """
    hashes = [text_hash(text) for text in letters[schema.CLEAN_TEXT]]
    known = cache.lookup(set(hashes)) if cache else {}
    todo = {}
    for h, text in zip(hashes, letters[schema.CLEAN_TEXT]):
        if h not in known:
            todo.setdefault(h, text)
    cached = sum(h in known for h in hashes)
    if progress:
        progress(cached)
    new_tokens = segment_texts(list(todo.values()), segmenter, processes, chunk_size, progress)
    if cache:
        cache.add(list(todo), new_tokens)
    known.update(zip(todo, new_tokens))
    out = letters.copy()
    out[schema.TOKENS] = [known[h] for h in hashes]
    return out, {"cached": cached, "segmented": len(todo),
                 "characters": sum(map(len, todo.values()))}


@on_configured_engine
def run_stage(run, config, *, dicts=(), processes=None, cache=True):
    """Segment the normalized letters of ``run`` (a ``RunDir``) batch by batch into
    ``segmented.parquet``.

    ``dicts`` are user dictionaries added to the configured ones; ``processes`` defaults to
    ``segment.processes``; ``cache`` false segments every letter again instead of reusing the
    segmentation cache in ``paths.data_dir``. Returns the ``StageResult``.
    """
    rows, batches = run.read_batches("normalize", config.segment.batch_rows, needed=(schema.CLEAN_TEXT,))
    segmenter = Segmenter.from_config(config, extra_dicts=dicts)
    store = SegmentCache(config.paths.data_dir / "segcache", segmenter.fingerprint()) if cache else None
    processes = processes or config.segment.processes
    totals = collections.Counter({"cached": 0, "segmented": 0, "characters": 0})

    def segmented_batches():  # batch by batch: a million letters' texts are never all in memory
        for letters in batches:
            segmented, stats = segment(letters, segmenter, store, processes, config.segment.chunk_size,
                                       progress=bar.update)
            totals.update(stats)
            yield segmented
    with stage(run, "segment") as result, tqdm(total=rows, desc="segment", unit="letter", disable=None) as bar:
        run.write_batches("segment", segmented_batches())
        run.set_quarantine("segment", [])
        result.rows_in = result.rows_out = rows
        result.notes = dict(totals) | {"processes": processes}
    return result
