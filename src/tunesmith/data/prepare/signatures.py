"""A few bits of every remembered example's MinHash, to rule out LSH candidates before their text is read back.

LSH finds the earlier examples that share a band with a new one; on a templated corpus (support or chat exports
with one system prompt and stock phrases) many share one by chance, more the more examples are indexed, and
fetching, parsing and shingling each of them made deduplication quadratic. b-bit minwise hashing (Li and König,
2010) keeps the lowest `bits` bits of each MinHash value: two sketches agree in a position when their minima are
equal (chance J, the Jaccard similarity) or, when they differ, by chance (1 / 2^bits). So the count of agreeing
positions estimates J, and a candidate whose count is too low to come from a pair at the threshold is dropped
unread; the others are still rechecked with the true Jaccard, which alone decides.

At 4 bits a signature is 64 bytes at 128 permutations (64 MiB a million examples), kept in one numpy array
indexed by staging key (rows of keys that are never remembered stay zero and are never asked for).
"""

from __future__ import annotations

import math

import numpy as np

BITS = 4  # per MinHash value: two to a byte, and a chance agreement of 1/16
MISS = 1e-6  # the largest chance that a pair at the threshold is dropped by its signature
GROWTH = 1.5  # the array grows by this factor (in place where the allocator can), so at most a third stays unused
_LOW = np.uint64(2**BITS - 1)
# How many of a byte's two 4-bit halves are zero: for `a ^ b`, how many positions two packed signatures agree in.
_ZERO_HALVES = np.array([(byte & 15 == 0) + (byte >> 4 == 0) for byte in range(256)], np.uint8)


def min_agreements(num_perm: int, threshold: float, miss: float = MISS) -> int:
    """The fewest agreeing positions a candidate needs to be rechecked: a pair at `threshold` has fewer with a
    chance of at most `miss` (more similar pairs, less still).

    Each of the num_perm positions agrees independently with chance p = J + (1 - J) / 2^BITS, so the count is
    binomial(num_perm, p). At the defaults (128 permutations, threshold 0.8): p = 0.8 + 0.2 / 16 = 0.8125, a mean
    of 104 agreements with a standard deviation of 4.4, and P(count <= 80) = 5.3e-7 < 1e-6 < P(count <= 81) =
    1.4e-6: 81 agreements are needed. As an estimate of J corrected for chance agreement, that is
    (81 / 128 - 1/16) / (15/16) = 0.608, a margin of 0.19 under the threshold. A pair at J = 0.5 still reaches it
    with a chance of 1.3%, one at 0.4 with 7e-6 and one at 0.3 with 3e-11. A candidate found through LSH shares a
    band (8 agreeing positions at the defaults), which only raises its count.
    """
    agree = threshold + (1 - threshold) / 2**BITS
    if agree >= 1:
        return num_perm  # identical sets agree everywhere
    log_agree, log_differ = math.log(agree), math.log1p(-agree)
    below = 0.0  # P(count < m)
    for m in range(num_perm + 1):
        below += math.exp(math.lgamma(num_perm + 1) - math.lgamma(m + 1) - math.lgamma(num_perm - m + 1)
                          + m * log_agree + (num_perm - m) * log_differ)
        if below > miss:
            return m
    return num_perm


class Signatures:
    """Packed b-bit signatures by key, and the candidates among some keys that a sketch could be a duplicate of."""

    def __init__(self, num_perm: int, threshold: float):
        self._width = (num_perm + 1) // 2  # bytes; an odd count leaves one half zero in every signature
        self._padding = self._width * 2 - num_perm  # that half agrees everywhere: not counted
        self.min_agreements = min_agreements(num_perm, threshold)
        self._rows = np.zeros((0, self._width), np.uint8)

    @property
    def nbytes(self) -> int:
        return self._rows.nbytes  # the whole allocation, rows not yet used included

    def sign(self, hashvalues: np.ndarray) -> np.ndarray:
        """The packed signature of a MinHash's values (uint64): the low 4 bits of each, two to a byte."""
        low = (hashvalues & _LOW).astype(np.uint8)
        if self._padding:
            low = np.append(low, np.uint8(0))
        return low[0::2] | (low[1::2] << 4)

    def add(self, key: int, signature: np.ndarray) -> None:
        if key >= len(self._rows):
            # resize reallocates, and glibc remaps a large block rather than copying it; new rows are zero
            self._rows.resize((max(key + 1, int(len(self._rows) * GROWTH), 1024), self._width))
        self._rows[key] = signature

    def plausible(self, keys: list[int], signature: np.ndarray) -> list[int]:
        """The keys (in their order) whose signatures agree with `signature` in enough positions to be rechecked."""
        if not keys:
            return []  # most lookups find no candidate: no array work for them
        agreements = _ZERO_HALVES[self._rows[keys] ^ signature].sum(axis=1) - self._padding
        return [key for key, count in zip(keys, agreements.tolist()) if count >= self.min_agreements]
