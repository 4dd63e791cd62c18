"""The dedupe index: every letter seen so far, as compact features, on disk.

Layout of an index directory::

    manifest.json            format, version, configuration hash, shards in order
    000001/ 000002/ ...      one shard per run that added letters:
        letters.parquet      letter_id, received_at, addressee, petitioner_key, body_hash,
                             places, others (names, "|"-joined), topics
        links.parquet        the links found when the shard was added (schema of links.csv)
        bands.npy            LSH band keys (letters x bands, uint64)
        names.npy, names_ptr.npy          hashes of each letter's specific names (CSR layout)
        terms.npy, terms_ptr.npy          its top TF-IDF term columns (with names: blocking keys)
        vec_data.npy, vec_indices.npy, vec_ptr.npy    TF-IDF top terms (CSR)
        text.npy, text_ptr.npy            comparison text, UTF-8 bytes

A shard is written to a temporary folder and renamed; the manifest, written last and
atomically, lists the shards that count, so an interrupted run leaves the index as it was.
Arrays are memory-mapped: a night's matching reads only the rows of its candidates.
"""
import dataclasses
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.errors import PetitionError
from pipeline.rundir import write_json

FORMAT = "petition-dedupe-index"
FORMAT_VERSION = 2
ARRAYS = ("bands", "names", "names_ptr", "terms", "terms_ptr",
          "vec_data", "vec_indices", "vec_ptr", "text", "text_ptr")
PERFORMANCE_KEYS = ("processes", "chunk_size", "chunk_pairs")  # change speed, not results


def config_hash(settings):
    """Hash of the dedupe settings that change results (and of the index format): an index
    built with another hash is refused."""
    values = {k: v for k, v in dataclasses.asdict(settings).items() if k not in PERFORMANCE_KEYS}
    payload = json.dumps([FORMAT_VERSION, values], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


class IndexProblem(PetitionError):
    """The index cannot be used as it is; the message says how to rebuild it."""

    def __init__(self, directory, problem):
        super().__init__(
            f"{directory}: {problem}; rebuild it: `petition dedupe --run RUN --index {directory} --rebuild` "
            f"starts it again from RUN (replay earlier runs oldest first, without --rebuild, "
            f"to bring their letters back)")


class Batch:
    """Features of a batch of letters (the night's letters, or one shard of the index).

    Parameters
    ----------
    letters : DataFrame
        Columns of ``letters.parquet``.
    arrays : dict of ndarray
        The arrays named in ``ARRAYS`` (possibly memory-mapped).
    """

    def __init__(self, letters, arrays):
        self.letters, self.arrays = letters, arrays
        self._vectors = None

    def __len__(self):
        return len(self.letters)

    def vectors(self, rows, n_features):
        """TF-IDF rows ``rows`` (any order) as a CSR matrix; the matrix of every row is made
        once, over the arrays as they are (memory-mapped ones are not read whole)."""
        if self._vectors is None:
            a = self.arrays
            self._vectors = sp.csr_matrix((a["vec_data"], a["vec_indices"], a["vec_ptr"]),
                                          shape=(len(self), n_features), copy=False)
        return self._vectors[np.asarray(rows)]

    def texts(self, rows):
        """Comparison texts of ``rows``, sliced row by row (no index array per byte)."""
        text, pointers = memoryview(np.asarray(self.arrays["text"])), self.arrays["text_ptr"]
        return [str(text[start:end], "utf-8")
                for start, end in zip(pointers[rows].tolist(), pointers[np.asarray(rows) + 1].tolist())]

    def save(self, directory, links):
        directory.mkdir(parents=True)
        self.letters.to_parquet(directory / "letters.parquet", index=False)
        links.to_parquet(directory / "links.parquet", index=False)
        for name in ARRAYS:
            np.save(directory / f"{name}.npy", self.arrays[name])

    @classmethod
    def load(cls, directory):
        letters = pd.read_parquet(directory / "letters.parquet")
        arrays = {name: np.load(directory / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
        return cls(letters, arrays)


class DedupeIndex:
    """The letters seen so far (see the module docstring).

    Parameters
    ----------
    directory : path
        Created on the first ``add``.
    config_hash : str
        Hash of the dedupe settings; an index built with other settings is refused.
    """

    def __init__(self, directory, config_hash):
        self.directory, self.config_hash = Path(directory), config_hash
        self.shards, self.links = [], pd.DataFrame()
        self.letters = pd.DataFrame()
        self._manifest = {"format": FORMAT, "version": FORMAT_VERSION, "config_hash": config_hash,
                          "shards": []}

    @property
    def manifest_path(self):
        return self.directory / "manifest.json"

    def __len__(self):
        return len(self.letters)

    @classmethod
    def open(cls, directory, config_hash, rebuild=False):
        """Load the index at ``directory`` (empty if there is none yet).

        Raises ``IndexProblem`` when it is damaged, of another format version, or built
        with other settings; ``rebuild`` discards it instead (moved aside, not deleted).
        """
        index = cls(directory, config_hash)
        if index.directory.exists() and not index.directory.is_dir():
            raise PetitionError(f"{index.directory}: index path is a file")
        if not index.manifest_path.exists():
            if index.directory.is_dir() and any(index.directory.iterdir()) and not rebuild:
                raise IndexProblem(index.directory, "not an index (no manifest.json) but not empty")
            return index
        try:
            index._load()
        except IndexProblem:
            if not rebuild:
                raise
            aside = index.directory.with_name(f"{index.directory.name}.old-{time.strftime('%Y%m%dT%H%M%S')}")
            index.directory.rename(aside)
            print(f"dedupe: moved the old index to {aside}; starting an empty one")
            return cls(directory, config_hash)
        return index

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
        shards, links = [], []
        for entry in manifest.get("shards", []):
            path = self.directory / entry["name"]
            try:
                shard = Batch.load(path)
                links.append(pd.read_parquet(path / "links.parquet"))
            except Exception as exc:  # numpy/pyarrow raise several types for damaged files
                raise IndexProblem(self.directory, f"shard {entry['name']} is damaged ({exc})") from exc
            if len(shard) != entry["letters"] or len(shard.arrays["bands"]) != entry["letters"]:
                raise IndexProblem(self.directory, f"shard {entry['name']} holds {len(shard)} letters, "
                                                   f"the manifest says {entry['letters']}")
            shards.append(shard)
        self._manifest, self.shards = manifest, shards
        self.letters = pd.concat([s.letters for s in shards], ignore_index=True) if shards else pd.DataFrame()
        self.links = pd.concat(links, ignore_index=True) if links else pd.DataFrame()

    def array(self, name):
        """One array of every shard, concatenated (names/terms/vec pointers are per shard)."""
        return np.concatenate([s.arrays[name] for s in self.shards]) if self.shards else None

    def csr(self, name):
        """The CSR layout ``name``/``name_ptr`` of all shards as one (values, pointers)."""
        values = [np.asarray(s.arrays[name]) for s in self.shards]
        pointers, offset = [np.zeros(1, dtype=np.int64)], 0
        for shard in self.shards:
            pointers.append(np.asarray(shard.arrays[f"{name}_ptr"][1:], dtype=np.int64) + offset)
            offset += int(shard.arrays[f"{name}_ptr"][-1])
        return (np.concatenate(values) if values else np.zeros(0, dtype=np.uint64)), np.concatenate(pointers)

    def _locate(self, rows):
        """Split global rows into (shard number, row within shard)."""
        bounds = np.cumsum([0] + [len(s) for s in self.shards])
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
        stacked = sp.vstack(parts, format="csr")
        return stacked[np.argsort(np.concatenate(order))]

    def texts(self, rows):
        """Comparison texts of index letters ``rows``, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        shard, local = self._locate(rows)
        out = [None] * len(rows)
        for number in np.unique(shard):
            chosen = np.flatnonzero(shard == number)
            for position, text in zip(chosen, self.shards[number].texts(local[chosen])):
                out[position] = text
        return out

    def add(self, batch, links):
        """Append ``batch`` (a ``Batch`` of new letters) and its ``links`` as a new shard."""
        if not len(batch):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{len(self._manifest['shards']) + 1:06d}"
        if (self.directory / name).exists():  # left by a run interrupted before its manifest
            shutil.rmtree(self.directory / name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.directory))
        try:
            batch.save(tmp / "shard", links)
            (tmp / "shard").rename(self.directory / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        manifest = dict(self._manifest)
        manifest["shards"] = manifest["shards"] + [{"name": name, "letters": len(batch), "links": len(links),
                                                    "added_at": time.strftime("%Y-%m-%dT%H:%M:%S")}]
        manifest["letters"] = sum(entry["letters"] for entry in manifest["shards"])
        write_json(manifest, self.manifest_path)
        self._manifest = manifest
        self.shards.append(Batch.load(self.directory / name))
        self.letters = pd.concat([self.letters, batch.letters], ignore_index=True) \
            if len(self.letters) else batch.letters.reset_index(drop=True)
        self.links = pd.concat([self.links, links], ignore_index=True) if len(self.links) else links
