"""Segment: cut ``clean_text`` into words with jieba and the petition dictionary.

* Dictionaries: ``corpora/dict/petition_dict.txt`` (petition terms jieba would split:
  一信多投, 征地拆迁, 林权证 ...), ``corpora/dict/stopwords.txt``, plus any extra jieba user
  dictionaries (``--dict FILE`` or ``segment.extra_dicts`` in the configuration), e.g. the
  message board's ``place_words.txt``.
* jieba's own dictionary cache lives in the project's data dir (``paths.data_dir``), not /tmp.
* Parallel over processes (``jieba.enable_parallel`` does not parallelise ``lcut``). The
  dictionaries are loaded before the workers are forked, so every worker has them (a
  worker forked before ``add_word`` would miss the words).
* A cache keyed by the hash of the text and of the dictionaries: a nightly run segments only
  letters it has not seen, and changing a dictionary invalidates the cache.

Output: ``tokens``, the words joined by single spaces, stopwords and punctuation removed.
"""
import collections
import hashlib
import logging
import math
import re
import time
import unicodedata
from pathlib import Path

import jieba
import jieba.finalseg
import pandas as pd
from tqdm import tqdm

from pipeline import parallel, schema
from pipeline.errors import PetitionError
from pipeline.rundir import stage, write_parquet

jieba.setLogLevel(logging.WARNING)


def text_hash(text):
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def _is_punctuation(token):
    """True for tokens made only of punctuation, symbols, spaces or control characters."""
    return all(unicodedata.category(ch)[0] in "PSZC" for ch in token)


_ABSENT = object()  # not even the prefix of a dictionary word


class DictionaryCutter:
    """jieba's precise mode (``Tokenizer.lcut``), with the same dictionary and the same output,
    in about half the time: the word graph and best route are computed in one pass over
    plain lists, from a table of word log-probabilities built once.

    Parameters
    ----------
    tokenizer : jieba.Tokenizer
        Initialised, user dictionaries loaded; only read here.
    hmm : bool
        Runs of single characters not in the dictionary go to jieba's HMM (``finalseg``).
    """

    # jieba's block and whitespace patterns (jieba.re_han_default, jieba.re_skip_default)
    _BLOCK = re.compile(r"([\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]+)")
    _SKIP = re.compile(r"(\r\n|\s)")

    def __init__(self, tokenizer, hmm=True):
        tokenizer.check_initialized()
        log_total = math.log(tokenizer.total)
        # a word's log-probability; None for a prefix that is no word (it continues the scan)
        self._logp = {word: math.log(freq) - log_total if freq else None for word, freq in tokenizer.FREQ.items()}
        self._unknown = -log_total  # jieba scores a character outside the dictionary as frequency 1
        self.hmm = hmm

    def lcut(self, text):
        """The words of ``text`` (list of str), as ``jieba.Tokenizer.lcut(text, HMM=self.hmm)``."""
        words = []
        for block in self._BLOCK.split(text):
            if not block:
                continue
            if self._BLOCK.match(block):
                ends = self._route(block)
                words.extend(self._hmm_words(block, ends) if self.hmm else self._dag_words(block, ends))
            else:
                for part in self._SKIP.split(block):
                    if self._SKIP.match(part):
                        words.append(part)
                    else:
                        words.extend(part)
        return words

    def _route(self, block):
        """``ends[k]``: where the best-scoring word starting at ``k`` ends (jieba's ``calc``:
        maximise the summed log-probability; on a tie the longer word wins)."""
        lookup, unknown = self._logp.get, self._unknown
        n = len(block)
        score, ends = [0.0] * (n + 1), list(range(1, n + 1))
        for k in range(n - 1, -1, -1):
            best, i = None, k + 1
            word_logp = lookup(block[k], _ABSENT)
            while word_logp is not _ABSENT:
                if word_logp is not None and (best is None or word_logp + score[i] >= best):
                    best, ends[k] = word_logp + score[i], i
                if i == n:
                    break
                i += 1
                word_logp = lookup(block[k:i], _ABSENT)
            score[k] = unknown + score[k + 1] if best is None else best
        return ends

    @staticmethod
    def _dag_words(block, ends):
        """Words along the route; runs of single ASCII letters or digits joined (jieba's no-HMM cut)."""
        words, x, run = [], 0, ""
        while x < len(block):
            word = block[x:ends[x]]
            if len(word) == 1 and word.isascii() and word.isalnum():
                run += word
            else:
                if run:
                    words.append(run)
                    run = ""
                words.append(word)
            x = ends[x]
        if run:
            words.append(run)
        return words

    def _hmm_words(self, block, ends):
        """Words along the route; runs of single characters that are no dictionary word go to
        the HMM (jieba's ``__cut_DAG``)."""
        words, x, run = [], 0, ""
        while x < len(block):
            word = block[x:ends[x]]
            if len(word) == 1:
                run += word
            else:
                if run:
                    words.extend(self._single_run(run))
                    run = ""
                words.append(word)
            x = ends[x]
        if run:
            words.extend(self._single_run(run))
        return words

    def _single_run(self, run):
        if len(run) == 1:
            return [run]
        if self._logp.get(run) is None:
            return list(jieba.finalseg.cut(run))
        return list(run)


class Segmenter:
    """A jieba tokenizer with user dictionaries and stopwords.

    Parameters
    ----------
    user_dicts : list of path
        jieba user dictionaries (``word [freq [tag]]`` per line).
    stopwords : path, optional
        One word per line; removed from the output.
    hmm : bool
        Let jieba's HMM find words missing from the dictionaries (names, places).
    cache_dir : path, optional
        Where jieba caches its compiled main dictionary.
    min_token_chars : int
        Shorter tokens are dropped.
    """

    def __init__(self, user_dicts=(), stopwords=None, hmm=True, cache_dir=None, min_token_chars=1):
        self.user_dicts = [Path(p) for p in user_dicts]
        self.stopwords_path = Path(stopwords) if stopwords else None
        self.hmm, self.cache_dir, self.min_token_chars = hmm, cache_dir, min_token_chars
        for path in self.user_dicts + ([self.stopwords_path] if self.stopwords_path else []):
            if not path.is_file():
                raise PetitionError(f"{path}: dictionary file not found")
        self._tokenizer = None
        self._stopwords = None
        self._keep = {}  # token -> whether it is kept; memoised, the vocabulary is bounded

    @classmethod
    def from_config(cls, config, extra_dicts=()):
        dict_dir = config.paths.dict_dir
        return cls(user_dicts=[dict_dir / "petition_dict.txt", *config.segment.extra_dicts, *extra_dicts],
                   stopwords=dict_dir / "stopwords.txt", hmm=config.segment.hmm,
                   cache_dir=config.paths.data_dir / "jieba",
                   min_token_chars=config.segment.min_token_chars)

    def fingerprint(self):
        """Hash of everything that changes the output: dictionaries, stopwords, settings."""
        digest = hashlib.sha256(f"{jieba.__version__}|{self.hmm}|{self.min_token_chars}".encode())
        for path in self.user_dicts + ([self.stopwords_path] if self.stopwords_path else []):
            digest.update(path.read_bytes())
        return digest.hexdigest()[:16]

    def _load(self):
        tokenizer = jieba.Tokenizer()
        if self.cache_dir:
            Path(self.cache_dir).mkdir(parents=True, exist_ok=True)
            tokenizer.tmp_dir = str(self.cache_dir)
        tokenizer.initialize()
        for path in self.user_dicts:
            tokenizer.load_userdict(str(path))
        words = self.stopwords_path.read_text(encoding="utf-8").split() if self.stopwords_path else []
        self._stopwords = frozenset(words)
        self._tokenizer = DictionaryCutter(tokenizer, self.hmm)

    def cut(self, text):
        """Return the words of ``text`` (list of str), stopwords and punctuation removed."""
        if self._tokenizer is None:
            self._load()
        keep = self._keep
        tokens = self._tokenizer.lcut(text)
        for token in tokens:
            if token not in keep:
                keep[token] = (token not in self._stopwords and len(token) >= self.min_token_chars
                               and not _is_punctuation(token))
        return [token for token in tokens if keep[token]]

    def cut_joined(self, texts):
        """Segment each text; return the tokens joined by spaces (list of str)."""
        return [" ".join(self.cut(text)) for text in texts]


def segment_texts(texts, segmenter, processes=1, chunk_size=2000, progress=None):
    """Segment ``texts`` (list of str) in ``processes`` worker processes.

    Returns a list of space-joined token strings, in input order. ``progress``, if given,
    is called with the number of texts finished after each chunk.
    """
    segmenter.cut("")  # load the dictionaries here, so that every forked worker has them
    return parallel.map_chunks(segmenter.cut_joined, texts, processes, chunk_size, progress)


class SegmentCache:
    """Segmented texts stored as Parquet shards under ``directory/<fingerprint>/``.

    A shard is added per run with the texts that run segmented; lookups read all shards.
    """

    def __init__(self, directory, fingerprint):
        self.directory = Path(directory) / fingerprint
        self._tokens = None

    def _load(self):
        self._tokens = {}
        for shard in sorted(self.directory.glob("*.parquet")):
            frame = pd.read_parquet(shard)
            self._tokens.update(zip(frame["hash"], frame[schema.TOKENS]))

    def lookup(self, hashes):
        """Return {hash: tokens} for the hashes already in the cache."""
        if self._tokens is None:
            self._load()
        return {h: self._tokens[h] for h in hashes if h in self._tokens}

    def add(self, hashes, tokens):
        if not hashes:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{hashes[0]}.parquet"
        write_parquet(pd.DataFrame({"hash": hashes, schema.TOKENS: tokens}), self.directory / name)
        if self._tokens is not None:
            self._tokens.update(zip(hashes, tokens))


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
