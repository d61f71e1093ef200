"""Exact and near-duplicate detection in one streaming pass.

Exact: a hash of the text after normalisation (case folded, punctuation and spacing ignored). Near: MinHash
sketches of character shingles in a datasketch LSH index; each candidate the index returns is re-checked with
the true Jaccard similarity of the two shingle sets, so the sketch's estimate never decides alone. The index
holds only sketches' band hashes, not texts: a candidate's text is fetched back through `lookup` (from the
staging file), which keeps memory bounded by the number of examples, not their size.

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

from tunesmith.config.prepare import DedupSettings

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


class Deduplicator:
    def __init__(self, settings: DedupSettings, lookup: Callable[[int], Parts]):
        from datasketch import MinHash, MinHashLSH

        self.settings = settings
        self._lookup = lookup
        self._exact: dict[bytes, int] = {}
        # crc32 is deterministic across processes (unlike hash()) and, being C, several times faster than
        # datasketch's default SHA-1 per shingle; the affine32 scheme mixes its output before permuting. One
        # sketch is reused: the index copies its band hashes on insert, and examples come one at a time.
        self._sketch = MinHash(num_perm=settings.num_perm, seed=MINHASH_SEED, hashfunc=zlib.crc32)
        # datasketch's default bands weigh misses and false candidates alike, which finds only ~40% of the pairs at
        # the threshold; every candidate is rechecked here, so false candidates cost little and misses are avoided.
        self._lsh = MinHashLSH(threshold=settings.threshold, num_perm=settings.num_perm, weights=LSH_WEIGHTS)

    def exact_match(self, parts: Parts) -> Match | None:
        key = self._exact.get(_digest(whole(parts)))
        return None if key is None else Match(key, 1.0)

    def near_match(self, parts: Parts) -> tuple[Match | None, object]:
        """The closest earlier example at or above the threshold (duplicates before merely similar ones), or None,
        and this example's sketch."""
        size, threshold = self.settings.shingle_size, self.settings.threshold
        own = shingles(whole(parts), size)
        sketch = self._sketch
        sketch.clear()
        sketch.update_batch([shingle.encode() for shingle in own])
        best = None
        for key in self._lsh.query(sketch):
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

    def remember(self, key: int, parts: Parts, sketch) -> None:
        """Index an example; `sketch` is the one near_match just returned for it."""
        self._exact.setdefault(_digest(whole(parts)), key)
        self._lsh.insert(key, sketch, check_duplication=False)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(normalize(text).encode(), digest_size=12).digest()
