"""The dedupe index: every letter seen so far, as compact features, on disk.

Layout of an index directory::

    manifest.json            format, version, configuration hash, shards in order; each shard
                             with the run it came from and the size and SHA-256 of its files
    .lock                    locked (fcntl) by the dedupe using the index, from open to commit
    000001/ 000002/ ...      one shard per run that added letters:
        letters.parquet      letter_id, received_at, addressee, petitioner_key, body_hash,
                             places, others (names, "|"-joined), topics
        links.parquet        the pairs scored when the shard was added (schema of links.csv): the
                             links, and the pairs kept to build cases (relation ``possible`` or
                             ``in_case``, older letters' pairs among them); never shown as links
        bands.npy            LSH band keys (letters x bands, uint64)
        names.npy, names_ptr.npy          hashes of each letter's specific names (CSR layout)
        title_names.npy, title_names_ptr.npy    ... of the names its title holds
        title_terms.npy, title_terms_ptr.npy    its title's rarer words (TF-IDF columns)
        numbers.npy, numbers_ptr.npy      hashes of its amounts, counts and case numbers
        terms.npy, terms_ptr.npy          its top TF-IDF term columns (with names: blocking keys)
        vec_data.npy, vec_indices.npy, vec_ptr.npy    TF-IDF top terms (CSR)
        text.npy, text_ptr.npy            comparison text, UTF-8 bytes
        title.npy, title_ptr.npy          title, UTF-8 bytes
        chars.npy                         characters of the comparison text
        lsh_keys.npy, lsh_keys_rows.npy   blocking keys of the kinds a letter makes alone,
        name_term_keys.npy, ...           sorted, and each one's row (``blocking.sorted_keys``)

One dedupe at a time: a second waits for the lock (``dedupe.index_lock_wait`` seconds), then
reads the manifest afresh. A shard is written to a temporary folder (``.000002.*``: the
night's features as the workers make them, then their sorted keys, ``staging_folder``, read
memory-mapped while they are matched; then its links) and renamed; the manifest, written
last and atomically, lists the shards that count, so an interrupted run leaves the index as
it was; what it left beside them (a temporary folder, a shard the manifest does not list, the
Spark engine's scratch folder ``.spark-*``) is removed on the next open. Every file of a
shard is checked against its size and checksum on open. Arrays are memory-mapped: a night's
matching reads the rows of its candidates (and most pages of the shards' sorted keys, to look
up its own).
"""
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp

from pipeline import schema
from pipeline.dedup.arrays import arrow_strings, is_increasing
from pipeline.dedup.batch import ARRAYS, Batch
from pipeline.dedup.blocking import KEY_ARRAYS
from pipeline.errors import PetitionError
from pipeline.rundir import concat_frames, read_row_table, write_json

FORMAT = "petition-dedupe-index"
# 4: people's names masked by normalize are held as keyed hashes (张:3f9a…), not as words
# 5: titles, their names and terms, numbers, text lengths (evidence of the match model); link scores are P(same matter)
# 6: each shard's blocking keys, sorted (KEY_ARRAYS)
# 7: no same-matter key of two top terms alone (blocking.matter_keys)
FORMAT_VERSION = 7
SHARD_FILES = ("letters.parquet", "links.parquet") + tuple(f"{name}.npy" for name in ARRAYS + KEY_ARRAYS)
# change speed or waiting, or only how cases are cut from what the index holds, not what it holds
UNHASHED_KEYS = ("processes", "chunk_size", "chunk_pairs", "index_lock_wait", "case_probability")
LOCK_FILE = ".lock"
# what matching and cases read of earlier links (``links``); the rest (evidence) stays in the files
HELD_LINK_COLUMNS = [schema.LETTER_A, schema.LETTER_B, schema.RELATION, schema.LINK_SCORE]
MODEL_FILE, CARD_FILE = "model.joblib", "model_card.json"  # a match model's folder (pipeline.dedup.matcher)
SHARD_NAME = re.compile(r"\d{6}")
SCRATCH_PREFIX = ".spark-"  # the Spark engine's scratch folders (spark_blocking)
# temporary shard folders and manifests, scratch folders
LEFTOVER = re.compile(rf"\.(\d{{6}}|manifest\.json)\..+|{re.escape(SCRATCH_PREFIX)}.+")
POLL_SECONDS = 0.5


def config_hash(settings):
    """Hash of the dedupe settings that change results (and of the index format): an index
    built with another hash is refused. The match model counts by its files' content, not
    by where it lies."""
    values = {k: v for k, v in dataclasses.asdict(settings).items() if k not in UNHASHED_KEYS}
    folder = Path(values["matcher"])
    values["matcher"] = [file_digest(path) if path.is_file() else "missing"
                         for path in (folder / MODEL_FILE, folder / CARD_FILE)]
    payload = json.dumps([FORMAT_VERSION, values], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def file_digest(path):
    """SHA-256 of a file's contents, hex (about 0.9 GB/s)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_digests(paths):
    """:func:`file_digest` of each of ``paths``, on every core (hashlib releases the GIL while
    it hashes): a million letters' shard is 2 GB, checked on every open."""
    with ThreadPoolExecutor(os.cpu_count() or 1) as executor:
        return list(executor.map(file_digest, paths))


class IndexLock:
    """An exclusive ``fcntl`` lock on ``directory/.lock`` (the directory is created), released
    by ``release`` or when the process ends, however it ends."""

    def __init__(self, directory):
        self.path = Path(directory) / LOCK_FILE
        self.handle = None

    def acquire(self, wait):
        """Take the lock, waiting up to ``wait`` seconds while another dedupe holds it."""
        deadline, told = time.monotonic() + wait, False
        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+", encoding="utf-8")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                if time.monotonic() >= deadline:
                    raise PetitionError(f"{self.path.parent}: index in use by another dedupe ({holder}); waited "
                                        f"{wait} s (dedupe.index_lock_wait); run again when it has finished") from None
                if not told:
                    print(f"dedupe: waiting for the index {self.path.parent}, in use by another dedupe ({holder})",
                          flush=True)
                    told = True
                time.sleep(POLL_SECONDS)
                continue
            if self._current(handle):
                break
            handle.close()  # the lock file was removed while we waited: lock the one there now
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}")
        handle.flush()
        self.handle = handle

    def _current(self, handle):
        try:
            return os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            return False

    def release(self):
        if self.handle is not None:
            self.handle.close()
            self.handle = None


class IndexProblem(PetitionError):
    """The index cannot be used as it is; the message says how to rebuild it."""

    def __init__(self, directory, problem):
        super().__init__(
            f"{directory}: {problem}; rebuild it: `petition dedupe --run RUN --index {directory} --rebuild` "
            f"starts it again from RUN (replay earlier runs oldest first, without --rebuild, "
            f"to bring their letters back)")


def shard_problem(directory, entry):
    """What is wrong with a manifest's shard ``entry`` and the files of its folder, or None."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) \
            or not SHARD_NAME.fullmatch(entry["name"]):
        return f"a shard entry of manifest.json has no shard name ({str(entry)[:60]})"
    for key in ("letters", "links"):
        if not isinstance(entry.get(key), int) or isinstance(entry[key], bool) or entry[key] < 0:
            return f"shard {entry['name']} in manifest.json lacks '{key}' (a count)"
    files = entry.get("files")
    if not isinstance(files, dict) or sorted(files) != sorted(SHARD_FILES) or not all(
            isinstance(f, dict) and isinstance(f.get("bytes"), int) and isinstance(f.get("sha256"), str)
            for f in files.values()):
        return f"shard {entry['name']} in manifest.json lacks 'files' (each file's bytes and sha256)"
    paths = {name: directory / entry["name"] / name for name in files}
    for name, expected in files.items():
        if not paths[name].is_file():
            return f"{paths[name]} is missing"
        if paths[name].stat().st_size != expected["bytes"]:
            return f"{paths[name]} holds {paths[name].stat().st_size} bytes, the manifest says {expected['bytes']}"
    for (name, expected), digest in zip(files.items(), file_digests(paths.values())):
        if digest != expected["sha256"]:
            return f"{paths[name]} does not match its checksum in manifest.json (damaged or altered)"
    return None


def link_ends(links, ids):
    """Positions in ``ids`` (arrow strings) of each link's two letters: (a, b) int64 arrays."""
    ends = []
    for column in (schema.LETTER_A, schema.LETTER_B):  # one column at a time: half the memory of both at once
        found = pc.index_in(arrow_strings(links[column]), value_set=ids) if len(links) else pa.array([], pa.int32())
        if found.null_count:
            raise PetitionError("the dedupe index holds links to letters it does not hold; rebuild it with --rebuild")
        ends.append(found.to_numpy().astype(np.int64))
    return tuple(ends)


def joined_ends(*ends):
    """Link ends (pairs of position arrays, :func:`link_ends`) of several links frames, in
    order, as one pair (the arrays themselves when there is one)."""
    if len(ends) == 1:
        return ends[0]
    return tuple(np.concatenate([end[side] for end in ends] + [np.zeros(0, dtype=np.int64)]) for side in (0, 1))


class DedupeIndex:
    """The letters seen so far (see the module docstring). Open it with ``open``, which locks
    it until ``close`` (or the end of a ``with`` block).

    Parameters
    ----------
    directory : path
        Created on ``open``.
    config_hash : str
        Hash of the dedupe settings; an index built with other settings is refused.

    Attributes
    ----------
    letters : DataFrame
        Every shard's ``letters.parquet``, in order.
    links : DataFrame
        Every shard's links, ``HELD_LINK_COLUMNS`` only (``shard_links``: one shard's, whole);
        None once let go (``let_go_of_links``).
    """

    def __init__(self, directory, config_hash):
        self.directory, self.config_hash = Path(directory), config_hash
        self.shards, self.links = [], pd.DataFrame()
        self.letters = pd.DataFrame()
        self._link_counts, self._lock, self._ends = [], None, None
        self._manifest = {"format": FORMAT, "version": FORMAT_VERSION, "config_hash": config_hash,
                          "shards": []}

    @property
    def manifest_path(self):
        return self.directory / "manifest.json"

    def __len__(self):
        return len(self.letters)

    def __getstate__(self):
        # a copy sent to a Spark worker reads the shards' features and letters from their
        # folders; the lock and the links stay with this process
        return self.__dict__ | {"_lock": None, "letters": None, "links": None, "_ends": None}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.letters = self._shards_letters()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Release the lock."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @classmethod
    def open(cls, directory, config_hash, rebuild=False, wait=0):
        """Lock and load the index at ``directory`` (empty if there is none yet), waiting up
        to ``wait`` seconds for another dedupe holding it; leftovers of an interrupted run
        are removed.

        Raises ``IndexProblem`` when it is damaged, of another format version, or built
        with other settings; ``rebuild`` discards it instead (moved aside, not deleted).
        """
        index = cls(directory, config_hash)
        if index.directory.exists() and not index.directory.is_dir():
            raise PetitionError(f"{index.directory}: index path is a file")
        index._lock = IndexLock(index.directory)
        index._lock.acquire(wait)
        try:
            index._open(rebuild)
        except BaseException:
            index.close()
            raise
        return index

    def _open(self, rebuild):
        if not self.manifest_path.exists():
            foreign = sorted(p.name for p in self.directory.iterdir()
                             if p.name != LOCK_FILE and not SHARD_NAME.fullmatch(p.name) and not LEFTOVER.fullmatch(p.name))
            if foreign and not rebuild:
                raise IndexProblem(self.directory, f"not an index (no manifest.json) but holds {foreign[0]}")
            if foreign:
                self._move_aside()
        else:
            try:
                self._load()
            except IndexProblem:
                if not rebuild:
                    raise
                self._move_aside()
        self._remove_leftovers()

    def _move_aside(self):
        """Move everything but the lock into a sibling folder and start empty."""
        stamp, number = time.strftime("%Y%m%dT%H%M%S"), 0
        aside = self.directory.with_name(f"{self.directory.name}.old-{stamp}")
        while aside.exists():
            number += 1
            aside = self.directory.with_name(f"{self.directory.name}.old-{stamp}-{number}")
        aside.mkdir()
        for path in self.directory.iterdir():
            if path.name != LOCK_FILE:
                path.rename(aside / path.name)
        print(f"dedupe: moved the old index to {aside}; starting an empty one")
        lock = self._lock
        self.__init__(self.directory, self.config_hash)
        self._lock = lock

    def _remove_leftovers(self):
        """Remove what an interrupted run left: temporary folders and unlisted shards."""
        listed = {entry["name"] for entry in self._manifest["shards"]}
        for path in sorted(self.directory.iterdir()):
            if LEFTOVER.fullmatch(path.name) or (SHARD_NAME.fullmatch(path.name) and path.name not in listed):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                print(f"dedupe: removed {path}, left by an interrupted run")

    def _load(self):
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexProblem(self.directory, f"unreadable manifest.json ({exc})") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise IndexProblem(self.directory, "manifest.json is not a dedupe index manifest")
        if manifest.get("version") != FORMAT_VERSION:
            raise IndexProblem(self.directory, f"index format version {manifest.get('version')}, "
                                               f"this program reads version {FORMAT_VERSION}")
        if manifest.get("config_hash") != self.config_hash:
            raise IndexProblem(self.directory, "index built with other dedupe settings "
                                               f"(hash {manifest.get('config_hash')}, now {self.config_hash})")
        if not isinstance(manifest.get("shards"), list):
            raise IndexProblem(self.directory, "manifest.json lacks its list of shards")
        shards, links = [], []
        for entry in manifest["shards"]:
            problem = shard_problem(self.directory, entry)
            if problem:
                raise IndexProblem(self.directory, problem)
            path = self.directory / entry["name"]
            try:
                shard = Batch.load(path)
                links.append(pd.read_parquet(path / "links.parquet", columns=HELD_LINK_COLUMNS))
            except Exception as exc:  # numpy/pyarrow raise several types for damaged files
                raise IndexProblem(self.directory, f"shard {entry['name']} is damaged ({exc})") from exc
            if len(shard) != entry["letters"] or len(shard.arrays["bands"]) != entry["letters"] \
                    or len(links[-1]) != entry["links"]:
                raise IndexProblem(self.directory, f"shard {entry['name']} holds {len(shard)} letters and "
                                                   f"{len(links[-1])} links, the manifest says "
                                                   f"{entry['letters']} and {entry['links']}")
            shards.append(shard)
        self._manifest, self.shards, self._link_counts = manifest, shards, [len(frame) for frame in links]
        self.letters = self._shards_letters()
        self.links = pd.concat(links, ignore_index=True) if links else pd.DataFrame()

    def _shards_letters(self):
        """The letters of every shard, in order, as one frame."""
        return concat_frames([s.letters for s in self.shards]) if self.shards else pd.DataFrame()

    def shard_from(self, source):
        """Position of the shard that ``source`` (``{"run": ..., "input": ...}``, as given to
        ``add``) added, or None."""
        for position, entry in enumerate(self._manifest["shards"]):
            if entry.get("source") == source:
                return position
        return None

    def before(self, position):
        """The index as it was before shard ``position`` was added: a view to match against
        and read, not to add to."""
        view = DedupeIndex(self.directory, self.config_hash)
        view.shards, view._link_counts = self.shards[:position], self._link_counts[:position]
        view._manifest = dict(self._manifest, shards=self._manifest["shards"][:position])
        if view.shards:
            view.letters = self.letters.iloc[:sum(len(s) for s in view.shards)]
            view.links = self.links.iloc[:sum(view._link_counts)]
            view._ends = self._ends and tuple(end[:len(view.links)] for end in self._ends)
        return view

    def link_ends(self):
        """Positions in ``letters`` of each link's two letters (:func:`link_ends`): (a, b) int64
        arrays like ``links``. Found once per process (for millions of links, finding ids
        takes seconds): links added later are located on their own, unless ``add`` was given them."""
        known = 0 if self._ends is None else len(self._ends[0])
        if known < len(self.links):
            self._located(link_ends(self.links.iloc[known:], arrow_strings(self.letters[schema.LETTER_ID])))
        return self._ends or (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))

    def let_go_of_links(self):
        """Drop the links held in memory and their located ends (``links`` is None after): a
        million letters' take 0.8 GB, and the shards keep them (``link_rows`` reads them there)."""
        self.links, self._ends = None, None

    def _located(self, ends):
        """Record ``ends`` as the positions of the links after those located so far."""
        self._ends = ends if self._ends is None else joined_ends(self._ends, ends)

    def shard_links(self, position):
        """The links found when shard ``position`` was added, with all their columns."""
        return pd.read_parquet(self._links_path(position))

    def link_rows(self, rows):
        """Every column of ``links`` at ``rows`` (ascending), read from the shards' files (the
        row groups holding them)."""
        shard, local = self._locate(np.asarray(rows, dtype=np.int64), self._link_counts)
        tables = [read_row_table(self._links_path(number), local[shard == number])
                  for number in np.unique(shard).tolist()]
        return pa.concat_tables(tables or [pq.read_schema(self._links_path(0)).empty_table()],
                                promote_options="default").to_pandas()

    def _links_path(self, position):
        return self.directory / self._manifest["shards"][position]["name"] / "links.parquet"

    def array(self, name):
        """One array of every shard, concatenated (names/terms/vec pointers are per shard)."""
        return np.concatenate([s.arrays[name] for s in self.shards]) if self.shards else None

    def rows(self, name, rows):
        """The per-letter array ``name`` (``bands``) at index letters ``rows`` (sorted), read
        from the shards' memory-mapped arrays, a slice of each: a Spark task's letters are
        read, not every shard's whole array."""
        shard, local = self._locate(np.asarray(rows, dtype=np.int64))
        parts = [self.shards[0].arrays[name][:0]] if self.shards else []
        for number in np.unique(shard):
            chosen = local[shard == number]
            array = self.shards[number].arrays[name]
            contiguous = chosen[-1] - chosen[0] + 1 == len(chosen)
            parts.append(array[chosen[0]:chosen[-1] + 1] if contiguous else array[chosen])
        return np.concatenate(parts)

    def block_keys(self, kind):
        """Each shard's sorted blocking keys of ``kind`` (one of ``blocking.STORED_KINDS``) as
        ``blocking.usable_blocks`` reads them: (keys, shard rows, the shard's first position)."""
        offset, out = 0, []
        for shard in self.shards:
            out.append((*shard.saved_keys(kind), offset))
            offset += len(shard)
        return out

    def csr(self, name):
        """The CSR layout ``name``/``name_ptr`` of all shards as one (values, pointers)."""
        values = [np.asarray(s.arrays[name]) for s in self.shards]
        pointers, offset = [np.zeros(1, dtype=np.int64)], 0
        for shard in self.shards:
            pointers.append(np.asarray(shard.arrays[f"{name}_ptr"][1:], dtype=np.int64) + offset)
            offset += int(shard.arrays[f"{name}_ptr"][-1])
        return (np.concatenate(values) if values else np.zeros(0, dtype=np.uint64)), np.concatenate(pointers)

    def counts(self, name):
        """How many values each letter holds in the CSR layout ``name`` (bytes of its text for
        ``text`` and ``title``), from the pointers alone."""
        return np.concatenate([np.diff(shard.arrays[f"{name}_ptr"]) for shard in self.shards]
                              + [np.zeros(0, dtype=np.int64)])

    def _locate(self, rows, sizes=None):
        """Split global rows of letters (of links: ``sizes`` the shards' link counts) into
        (shard number, row within shard)."""
        bounds = np.cumsum([0] + (sizes if sizes is not None else [len(s) for s in self.shards]))
        shard = np.searchsorted(bounds, rows, side="right") - 1
        return shard, rows - bounds[shard]

    def vectors(self, rows, n_features):
        """TF-IDF rows (CSR) of index letters ``rows``, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        shard, local = self._locate(rows)
        parts, order = [], []
        for number in np.unique(shard):
            chosen = np.flatnonzero(shard == number)
            parts.append(self.shards[number].vectors(local[chosen], n_features))
            order.append(chosen)
        if not parts:
            return sp.csr_matrix((0, n_features), dtype=np.float32)
        stacked, order = sp.vstack(parts, format="csr"), np.concatenate(order)
        return stacked if is_increasing(order) else stacked[np.argsort(order)]

    def texts(self, rows, name="text"):
        """Comparison texts (``name`` "title": titles) of index letters ``rows``, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        shard, local = self._locate(rows)
        out = [None] * len(rows)
        for number in np.unique(shard):
            chosen = np.flatnonzero(shard == number)
            for position, text in zip(chosen, self.shards[number].texts(local[chosen], name)):
                out[position] = text
        return out

    def _next_shard(self):
        return f"{max((int(e['name']) for e in self._manifest['shards']), default=0) + 1:06d}"

    def staged(self, batch):
        """``batch`` saved with its sorted keys into a temporary folder of the index (the next
        shard's, removed on the next open if this run stops) and memory-mapped from there, as a
        shard is: its keys are made once, for matching and for ``add``, which renames the
        folder into the shard, and its arrays leave memory. A batch of no letters, or one
        staged here already, is kept."""
        if not len(batch) or self._holds_staged(batch):
            return batch
        folder = self.staging_folder()
        batch.save(folder)
        return Batch.load(folder)

    def _holds_staged(self, batch):
        """Whether ``batch`` is saved in a temporary folder of this index (``staging_folder``)."""
        return batch.directory is not None and batch.directory.parent.parent == self.directory.resolve()

    def staging_folder(self):
        """A new folder, not made yet, for the next shard's features, in a temporary folder of
        the index (removed on the next open if this run stops before ``add``): a batch saved
        there (``featurize``) is ``staged``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{self._next_shard()}.", dir=self.directory)) / "shard"

    def add(self, batch, links, source=None, ends=None):
        """Append ``batch`` (a ``Batch`` of new letters, ``staged`` here unless it is already) and
        its ``links`` as a new shard, recording ``source`` (which run and input it came from: see
        ``shard_from``).
        ``ends``: the links' letters' positions once the batch is added, when the caller has
        them (``link_ends`` need not find them again)."""
        if self._lock is None:
            raise RuntimeError("DedupeIndex.add needs an index opened (and locked) with DedupeIndex.open")
        if not len(batch):  # nothing to add: a night with no new letter leaves no folder behind
            if self._holds_staged(batch):
                shutil.rmtree(batch.directory.parent)
            return
        name = self._next_shard()
        if (self.directory / name).exists():  # left by a run interrupted before its manifest
            shutil.rmtree(self.directory / name)
        batch = self.staged(batch)
        try:
            links.to_parquet(batch.directory / "links.parquet", index=False)
            paths = [batch.directory / file for file in SHARD_FILES]
            files = {file: {"bytes": path.stat().st_size, "sha256": digest}
                     for file, path, digest in zip(SHARD_FILES, paths, file_digests(paths))}
            batch.directory.rename(self.directory / name)
        finally:
            shutil.rmtree(batch.directory.parent, ignore_errors=True)
        batch.directory = (self.directory / name).resolve()  # its files are the shard's now
        manifest = dict(self._manifest)
        manifest["shards"] = manifest["shards"] + [{"name": name, "letters": len(batch), "links": len(links),
                                                    "added_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                    "source": source or {}, "files": files}]
        manifest["letters"] = sum(entry["letters"] for entry in manifest["shards"])
        write_json(manifest, self.manifest_path)
        self._manifest = manifest
        self.shards.append(batch)
        self._link_counts.append(len(links))
        self.letters = concat_frames([self.letters, batch.letters] if len(self.letters) else [batch.letters])
        links = links[HELD_LINK_COLUMNS]
        self.links = pd.concat([self.links, links], ignore_index=True) if len(self.links) else links
        located = 0 if self._ends is None else len(self._ends[0])
        if ends is not None and located == len(self.links) - len(links):  # the earlier links' are located
            self._located(ends)
