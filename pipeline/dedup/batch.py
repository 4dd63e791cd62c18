"""A batch of letters' features: the night's letters (``pipeline.dedup.features``) or one
shard of the dedupe index (``pipeline.dedup.index``), in memory or memory-mapped from the
shard's folder (the files the index's docstring lists), with what matching reads of them.
"""
import contextlib
import mmap
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from npy_append_array import NpyAppendArray

from pipeline.dedup.blocking import STORED_KINDS, sorted_keys

ARRAYS = ("bands", "names", "names_ptr", "title_names", "title_names_ptr", "title_terms", "title_terms_ptr",
          "numbers", "numbers_ptr", "terms", "terms_ptr",
          "vec_data", "vec_indices", "vec_ptr", "text", "text_ptr", "title", "title_ptr", "chars")


class Batch:
    """Features of a batch of letters: the night's letters (saved into a temporary folder of
    the index as they are made: ``BatchWriter``, ``DedupeIndex.staging_folder``), or one shard
    of the index.

    Parameters
    ----------
    letters : DataFrame
        Columns of ``letters.parquet``.
    arrays : dict of ndarray
        The arrays named in ``ARRAYS`` (possibly memory-mapped).
    """

    def __init__(self, letters, arrays):
        self.letters, self.arrays = letters, arrays
        self.directory = None  # its folder in the index, once saved there (``load``)
        self._vectors = None

    def __len__(self):
        return len(self.letters)

    def vectors(self, rows, n_features):
        """TF-IDF rows ``rows`` (any order) as a CSR matrix (a copy); the matrix of every row is
        made once, over the arrays as they are (memory-mapped ones are not read whole)."""
        if self._vectors is None:
            a = self.arrays
            self._vectors = sp.csr_matrix((a["vec_data"], a["vec_indices"], a["vec_ptr"]),
                                          shape=(len(self), n_features), copy=False)
        chosen = self._vectors[np.asarray(rows)]
        self._release("vec_data", "vec_indices")
        return chosen

    def texts(self, rows, name="text"):
        """Comparison texts (``name`` "title": titles) of ``rows``, sliced row by row (no index
        array per byte)."""
        text, pointers = memoryview(np.asarray(self.arrays[name])), self.arrays[f"{name}_ptr"]
        texts = [str(text[start:end], "utf-8")
                 for start, end in zip(pointers[rows].tolist(), pointers[np.asarray(rows) + 1].tolist())]
        self._release(name)
        return texts

    def _release(self, *names):
        """Let go of this process's pages of the memory-mapped arrays ``names``, once what was
        read of them is copied: matching reads a million letters' texts and vectors (1.6 GB)
        in random order, and their pages would otherwise stay resident until the end. The
        files stay in the page cache; another thread reading them meanwhile faults its pages
        in again (the maps are read-only)."""
        for name in names:
            mapped = self.arrays[name].base
            if isinstance(mapped, mmap.mmap) and hasattr(mapped, "madvise"):
                mapped.madvise(mmap.MADV_DONTNEED)

    def block_keys(self):
        """The letters' blocking keys of ``blocking.STORED_KINDS``, sorted, one kind at a time:
        yields (kind, keys, rows), a saved batch's from its files, else made (``blocking.sorted_keys``)."""
        if self.directory is None:
            yield from sorted_keys(self.arrays)
            return
        for kind in STORED_KINDS:
            yield (kind, *self.saved_keys(kind))

    def saved_keys(self, kind):
        """A saved batch's sorted keys of ``kind`` and their rows, memory-mapped afresh: a
        night's lookups touch most pages of a million letters' keys (600 MB), which leave
        memory with the arrays instead of staying mapped with the shard."""
        stem = self.directory / STORED_KINDS[kind]
        return np.load(f"{stem}.npy", mmap_mode="r"), np.load(f"{stem}_rows.npy", mmap_mode="r")

    def save(self, directory, keys=True):
        """Write the letters, the arrays and the sorted blocking keys (unless not ``keys``) to a
        new ``directory`` (an index shard's links are written there by ``DedupeIndex.add``)."""
        directory.mkdir(parents=True)
        self.letters.to_parquet(directory / "letters.parquet", index=False)
        for name in ARRAYS:
            np.save(directory / f"{name}.npy", self.arrays[name])
        if keys:
            save_keys(directory, self.arrays)

    @contextlib.contextmanager
    def saved_for_workers(self, directory):
        """Inside the block the batch pickles as a shard does, as the folder ``directory``,
        where it is saved first (unless it is saved already: a shard, a staged night); this process
        keeps its arrays."""
        if self.directory is not None:
            yield
            return
        self.save(directory, keys=False)  # Spark's workers make the keys they join on
        self.directory = Path(directory).resolve()
        try:
            yield
        finally:
            self.directory = None

    @classmethod
    def load(cls, directory):
        letters = pd.read_parquet(directory / "letters.parquet")
        arrays = {name: np.load(directory / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
        batch = cls(letters, arrays)
        batch.directory = Path(directory).resolve()
        return batch

    def __reduce__(self):
        # a shard travels to a Spark worker as its folder, memory-mapped there, not copied
        if self.directory is not None:
            return Batch.load, (self.directory,)
        return Batch, (self.letters, self.arrays)


def save_keys(directory, arrays):
    """Write the sorted blocking keys of a batch's ``arrays`` (``blocking.sorted_keys``) and
    their rows into ``directory``, as a shard keeps them."""
    for kind, ordered, rows in sorted_keys(arrays):
        np.save(directory / f"{STORED_KINDS[kind]}.npy", ordered)
        np.save(directory / f"{STORED_KINDS[kind]}_rows.npy", rows)


class BatchWriter:
    """A batch saved into a new ``directory`` as its features come, chunk by chunk, so that a
    million letters' arrays (3 GB) are never in memory together: ``append`` each chunk's
    arrays (those of ``ARRAYS``, their ``*_ptr`` CSR pointers starting at 0), then ``close``
    with the letters; it returns the batch, memory-mapped from ``directory``."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True)
        self._files = {name: NpyAppendArray(self.directory / f"{name}.npy") for name in ARRAYS}
        self._ends = {}  # each *_ptr array's last pointer written: where the next chunk's start
        self._dtypes = {}

    def append(self, arrays):
        """Add one chunk's ``arrays`` after those appended before."""
        for name, file in self._files.items():
            values = np.asarray(arrays[name])
            if name in self._dtypes and values.dtype != self._dtypes[name]:  # appending would cast it
                raise TypeError(f"{name}: {values.dtype} after {self._dtypes[name]}")
            self._dtypes[name] = values.dtype
            if name in self._ends:  # a later chunk's pointers: shifted, their leading 0 dropped
                values = values[1:] + self._ends[name]
            if name.endswith("_ptr") and len(values):
                self._ends[name] = values[-1]
            file.append(values)

    def close(self, letters):
        """Write ``letters`` (the index columns, a row per letter appended) and the sorted
        blocking keys; returns the ``Batch``. No letters: append one chunk of empty arrays first."""
        for file in self._files.values():
            file.close()
        letters.to_parquet(self.directory / "letters.parquet", index=False)
        batch = Batch.load(self.directory)
        save_keys(self.directory, batch.arrays)
        return batch
