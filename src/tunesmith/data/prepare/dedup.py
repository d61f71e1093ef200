"""Exact and near-duplicate detection in one streaming pass.

Exact: a hash of the text after normalisation (case folded, punctuation and spacing ignored). Near: MinHash
sketches of character shingles, banded as datasketch's MinHashLSH would band them; a candidate that shares
a band and whose 4-bit signature (signatures.py) agrees closely enough to be a duplicate is re-checked with
the true Jaccard similarity of the two shingle sets, so the sketch's estimate never decides alone. One index
holds both kinds of 64-bit hashes in compact sorted arrays (hash_index), not texts and not Python objects:
12 bytes per entry, 17 entries per example at the default 128 permutations (16 bands), and the signature
adds 64 bytes, where datasketch's in-memory storage took ~4.7 KiB per example. A candidate's text is
fetched back through `lookup` (from the staging file on disk).

Two examples compare as a whole (prompt and response together). When they are similar as a whole but their
prompts are not (one answer given to differently worded questions), they are not duplicates, since each
teaches the answer to another question, but they are `similar`: the split keeps them on one side, so a test
question never has its answer in training.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tunesmith.config.prepare import DedupSettings
from tunesmith.data.prepare.hash_index import HashIndex
from tunesmith.data.prepare.signatures import Signatures

_NOT_WORD = re.compile(r"[\W_]+")
MINHASH_SEED = 1
LSH_WEIGHTS = (0.05, 0.95)  # (false candidates, missed pairs): at 128 permutations, 95% of pairs at the threshold

Parts = tuple[str, str]  # (prompt, response), as examples.compared_parts gives them


def normalize(text: str) -> str:
    return _NOT_WORD.sub(" ", text.casefold()).strip()


def shingles(text: str, size: int) -> set[str]:
    """Character shingles of the normalised text; a text shorter than one shingle is its own single shingle."""
    norm = normalize(text)
    if len(norm) <= size:
        return {norm}
    return {norm[i : i + size] for i in range(len(norm) - size + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def whole(parts: Parts) -> str:
    return "\n".join(parts)


@dataclass(frozen=True)
class Match:
    key: int  # the earlier example this one resembles
    similarity: float  # Jaccard of the whole examples; 1.0 for exact duplicates
    same_prompt: bool = True  # False: only similar (same answer to another prompt), not a duplicate


@dataclass(frozen=True)
class Sketch:
    """What near_match computed for an example and remember keeps of it."""

    bands: np.ndarray  # one 64-bit hash per LSH band
    signature: np.ndarray  # the packed low bits of every MinHash value


class Deduplicator:
    def __init__(self, settings: DedupSettings, lookup: Callable[[int], Parts]):
        from datasketch import MinHash, MinHashLSH

        self.settings = settings
        self._lookup = lookup
        # Text digests and band hashes share one index: both are uniform 64-bit values, so one is taken for the
        # other with a chance of 2^-64 a pair (about 1e-6 over a million examples).
        self._index = HashIndex()
        # crc32 is deterministic across processes (unlike hash()) and, being C, several times faster than
        # datasketch's default SHA-1 per shingle; the affine32 scheme mixes its output before permuting. One
        # MinHash is reused: only its band hashes and signature are kept, and examples come one at a time.
        self._minhash = MinHash(num_perm=settings.num_perm, seed=MINHASH_SEED, hashfunc=zlib.crc32)
        # datasketch's default bands weigh misses and false candidates alike, which finds only ~40% of the pairs at
        # the threshold; every candidate is rechecked here, so false candidates cost little and misses are avoided.
        # Only the band layout is taken from MinHashLSH: its storage is replaced by the compact index.
        layout = MinHashLSH(threshold=settings.threshold, num_perm=settings.num_perm, weights=LSH_WEIGHTS)
        self._bands = BandHasher(layout.b, layout.r)
        self._signatures = Signatures(settings.num_perm, settings.threshold)

    @property
    def index_entries(self) -> int:
        return len(self._index)

    @property
    def index_bytes(self) -> int:
        """The hash index's sorted arrays and the signatures' array, as allocated."""
        return self._index.nbytes + self._signatures.nbytes

    def exact_match(self, parts: Parts) -> Match | None:
        keys = self._index.keys(np.array([_digest(whole(parts))], np.uint64))
        return Match(min(keys), 1.0) if keys else None

    def near_match(self, parts: Parts) -> tuple[Match | None, Sketch]:
        """The closest earlier example at or above the threshold (duplicates before merely similar ones, then the
        earliest), or None, and this example's sketch."""
        size, threshold = self.settings.shingle_size, self.settings.threshold
        own = shingles(whole(parts), size)
        minhash = self._minhash
        minhash.clear()
        minhash.update_batch(map(str.encode, own))
        sketch = Sketch(self._bands(minhash.hashvalues), self._signatures.sign(minhash.hashvalues))
        best = None
        for key in self._signatures.plausible(sorted(self._index.keys(sketch.bands)), sketch.signature):
            theirs = self._lookup(key)
            similarity = jaccard(own, shingles(whole(theirs), size))
            if similarity < threshold:
                continue
            same_prompt = not (parts[0] or theirs[0]) or jaccard(shingles(parts[0], size),
                                                                 shingles(theirs[0], size)) >= threshold
            match = Match(key, similarity, same_prompt)
            if best is None or (match.same_prompt, match.similarity) > (best.same_prompt, best.similarity):
                best = match
        return best, sketch

    def remember(self, key: int, parts: Parts, sketch: Sketch) -> None:
        """Index an example; `sketch` is what near_match just returned for it."""
        # A text seen before (kept while exact deduplication is off) adds its digest again: exact_match takes the
        # smallest key, so the first example with a text stays the one its duplicates point to.
        self._index.add([_digest(whole(parts)), *sketch.bands.tolist()], key)
        self._signatures.add(key, sketch.signature)


class BandHasher:
    """One 64-bit hash per LSH band of a MinHash (b bands of r values), distinct per band.

    Two sketches share a band exactly when its r values are equal, as in datasketch's MinHashLSH; hashing the
    band to 64 bits (a seeded linear combination, then the splitmix64 finaliser) makes unequal bands collide
    with a chance around 2^-60, and a collision only adds a candidate that the Jaccard recheck then rejects.
    """

    def __init__(self, b: int, r: int):
        self.b, self.r = b, r
        self._multipliers = np.random.default_rng(MINHASH_SEED).integers(
            0, 2**64, size=(b, r), dtype=np.uint64, endpoint=False) | np.uint64(1)

    def __call__(self, hashvalues: np.ndarray) -> np.ndarray:
        bands = hashvalues[: self.b * self.r].reshape(self.b, self.r)
        return _splitmix64((bands * self._multipliers).sum(axis=1, dtype=np.uint64))


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _digest(text: str) -> int:
    """64 bits of BLAKE2b: two different texts of a million share one with a chance of ~3e-8."""
    return int.from_bytes(hashlib.blake2b(normalize(text).encode(), digest_size=8).digest(), "little")
