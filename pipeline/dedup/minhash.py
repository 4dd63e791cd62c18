"""MinHash signatures and LSH banding over character shingles, vectorised with numpy.

Texts become one concatenated array of code points; every character ``k``-gram is hashed
in one pass over that array; each of the ``num_perm`` hash functions is applied to the
shingle array of a slice of texts at once (a slice's shingles fit the CPU's cache) and
reduced per document with ``np.minimum.reduceat``. No Python loop runs per document or per
shingle, only per slice, hash function and band.

Hash functions are multiply-add-shift (Dietzfelbinger): ``h(x) = ((a*x + b) mod 2**64) >> 32``
for 32-bit shingle hashes ``x`` and random 64-bit ``a`` (odd) and ``b``: a 2-universal family
like datasketch's ``(a*x + b) mod p``, but the modulus is the machine word's, so numpy needs
no division (twice as fast).

Equal band keys make candidate pairs (``pipeline.dedup.candidates.Blocks`` lists them).
"""
import numpy as np
from scipy.integrate import quad

from pipeline.dedup.arrays import mix64

_EMPTY = np.uint32(0xFFFFFFFF)  # signature value of a text with no shingles


def shingle_hashes(texts, k=3):
    """Hash every character ``k``-gram of every text.

    Parameters
    ----------
    texts : sequence of str
    k : int
        Shingle length in characters. A text shorter than ``k`` is one shingle.

    Returns
    -------
    hashes : ndarray of uint64
        32-bit hashes (stored as uint64) of all shingles, text after text.
    starts : ndarray of int64, shape (len(texts),)
        Where each text's shingles begin in ``hashes``; an empty text has none (its start
        equals the next text's).
    """
    if k < 1:
        raise ValueError(f"shingle size must be at least 1, got {k}")
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    codes = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    counts = np.where(lengths > 0, np.maximum(lengths - k + 1, 1), 0)
    starts = np.cumsum(counts) - counts
    text_starts = np.cumsum(lengths) - lengths
    text_ends = np.repeat(text_starts + lengths, counts)
    # position of each shingle's first character in ``codes``
    positions = np.arange(counts.sum(), dtype=np.int64) - np.repeat(starts - text_starts, counts)
    padded = np.concatenate((codes, np.zeros(k, dtype=np.uint64)))
    hashes = np.zeros(len(positions), dtype=np.uint64)
    for j in range(k):  # polynomial hash; characters past a short text's end count as 0
        inside = (positions + j < text_ends).astype(np.uint64)
        hashes = hashes * np.uint64(0x100000001B3) + padded[positions + j] * inside
    return mix64(hashes) >> np.uint64(32), starts


class MinHasher:
    """MinHash signatures of texts over character shingles.

    Parameters
    ----------
    num_perm : int
        Number of hash functions (signature length).
    shingle_size : int
        Characters per shingle.
    seed : int
        Seed of the hash functions; signatures are comparable only with equal seeds.
    """

    def __init__(self, num_perm=64, shingle_size=3, seed=1):
        if num_perm < 1:
            raise ValueError(f"num_perm must be at least 1, got {num_perm}")
        self.num_perm, self.shingle_size, self.seed = num_perm, shingle_size, seed
        rng = np.random.default_rng(seed)
        self._a = rng.integers(1, 2**63, num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self._b = rng.integers(0, 2**63, num_perm, dtype=np.uint64) * np.uint64(2)

    def signatures(self, texts, slice_chars=65536):
        """Return the signatures of ``texts`` (a list of str): uint32 array of shape
        (len(texts), num_perm).

        Texts are hashed in slices of about ``slice_chars`` characters, so that each hash
        function passes over a slice's shingles while they are in the CPU's cache (five
        times faster than over a worker's chunk of 20,000 letters at once)."""
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        ends = np.cumsum(lengths)
        signatures, start = np.empty((len(texts), self.num_perm), dtype=np.uint32), 0
        while start < len(texts):
            end = max(start + 1, int(np.searchsorted(ends, ends[start] - lengths[start] + slice_chars, side="right")))
            signatures[start:end] = self._signatures(texts[start:end])
            start = end
        return signatures

    def _signatures(self, texts):
        hashes, starts = shingle_hashes(texts, self.shingle_size)
        signatures = np.full((len(texts), self.num_perm), _EMPTY, dtype=np.uint32)
        nonempty = np.append(starts[1:], len(hashes)) > starts
        if not nonempty.any():
            return signatures
        buffer = np.empty_like(hashes)
        for p in range(self.num_perm):
            np.multiply(hashes, self._a[p], out=buffer)
            np.add(buffer, self._b[p], out=buffer)
            np.right_shift(buffer, np.uint64(32), out=buffer)
            signatures[nonempty, p] = np.minimum.reduceat(buffer, starts[nonempty])
        return signatures


def _false_positive(threshold, bands, rows):
    return quad(lambda s: 1 - (1 - s ** rows) ** bands, 0.0, threshold)[0]


def _false_negative(threshold, bands, rows):
    return quad(lambda s: (1 - s ** rows) ** bands, threshold, 1.0)[0]


def lsh_params(threshold, num_perm, false_positive_weight=0.5, false_negative_weight=0.5):
    """Bands and rows per band that minimise the weighted false positive and negative areas
    around ``threshold`` (Jaccard), the rule datasketch's ``MinHashLSH`` uses, so both
    index with the same banding for the same threshold and ``num_perm``.

    Returns (bands, rows) with bands * rows <= num_perm.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"LSH threshold must be between 0 and 1, got {threshold}")
    best, best_error = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            error = (false_positive_weight * _false_positive(threshold, bands, rows)
                     + false_negative_weight * _false_negative(threshold, bands, rows))
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


def band_keys(signatures, bands, rows):
    """Hash each band of each signature (with the band's number) into one uint64 key.

    Returns an array of shape (n, bands); equal keys in one column mean an equal band.
    """
    signatures = np.asarray(signatures, dtype=np.uint64)
    keys = np.empty((len(signatures), bands), dtype=np.uint64)
    for band in range(bands):
        key = np.full(len(signatures), band, dtype=np.uint64)
        for column in range(band * rows, (band + 1) * rows):
            key = mix64(key ^ signatures[:, column])
        keys[:, band] = key
    return keys
