"""An append-only multimap from 64-bit hashes to example keys, in sorted numpy arrays: 12 bytes an entry.

Deduplication keeps a hash of every kept example's normalised text and one hash per LSH band of its
sketch: tens of millions of entries for a million examples. datasketch's in-memory LSH storage (Python
dicts of sets of Python objects) costs ~4.7 KiB per example that way. Here new entries wait in a small
dict (~100 bytes an entry, `pending` entries at most) and are then merged into a sorted array (a "run"),
which grows until it holds `max_run` entries and is then left as it is while a new run starts, as in a
log-structured merge tree: a lookup is one binary search per run (a million examples make five), and memory
is the arrays themselves plus, while a flush merges, a copy of at most one run.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain

import numpy as np

PENDING = 1 << 15  # entries held in a dict before they are merged into the newest run
MAX_RUN = 1 << 22  # a run stops growing at this many entries (48 MiB), which bounds a merge's extra copy
KEY = np.uint32  # example keys are staging positions: up to ~4.3 billion examples


class HashIndex:
    def __init__(self, pending: int = PENDING, max_run: int = MAX_RUN):
        self._pending: dict[int, int] = {}  # hash -> the first key added under it since the last flush
        self._shared: dict[int, list[int]] = {}  # hash -> the later ones (rare: a hash mostly has one key)
        self._pending_entries = 0
        self._limits = (pending, max_run)
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted hashes, their keys); all full but the last

    def __len__(self) -> int:
        return self._pending_entries + sum(len(hashes) for hashes, _ in self._runs)

    @property
    def nbytes(self) -> int:
        """Bytes of the sorted arrays; the pending dict adds at most a few MiB (`pending` entries)."""
        return sum(hashes.nbytes + keys.nbytes for hashes, keys in self._runs)

    def add(self, hashes: Iterable[int], key: int) -> None:
        for value in hashes:
            first = self._pending.get(value)
            if first is None:
                self._pending[value] = key
            elif first != key:
                self._shared.setdefault(value, []).append(key)
            else:
                continue  # already there
            self._pending_entries += 1
        if self._pending_entries >= self._limits[0]:
            self._flush()

    def keys(self, hashes: np.ndarray) -> set[int]:
        """Every key added under any of `hashes` (uint64)."""
        found = set()
        for value in hashes.tolist():
            if value in self._pending:
                found.add(self._pending[value])
                found.update(self._shared.get(value, ()))
        for run_hashes, run_keys in self._runs:
            # Few numpy calls per run, since most lookups miss: a run is searched for every hash at once.
            starts = run_hashes.searchsorted(hashes)
            hits = run_hashes.take(starts, mode="clip") == hashes
            if np.count_nonzero(hits):  # several times faster than hits.any() on a few values
                ends = run_hashes.searchsorted(hashes[hits], "right")
                for start, end in zip(starts[hits].tolist(), ends.tolist()):
                    found.update(run_keys[start:end].tolist())
        return found

    def _flush(self) -> None:
        count = self._pending_entries
        shared = self._shared.items()
        hashes = np.fromiter(chain(self._pending, (value for value, keys in shared for _ in keys)), np.uint64, count)
        keys = np.fromiter(chain(self._pending.values(), *self._shared.values()), KEY, count)
        order = hashes.argsort(kind="stable")
        self._runs.append((hashes[order], keys[order]))
        self._pending.clear()
        self._shared.clear()
        self._pending_entries = 0
        runs = self._runs
        if len(runs) > 1 and len(runs[-2][0]) + len(runs[-1][0]) <= self._limits[1]:
            newer = runs.pop()
            runs[-1] = _merge(runs[-1], newer)


def _merge(older: tuple[np.ndarray, np.ndarray], newer: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Two sorted runs as one, without sorting again: each newer entry's place is found by binary search."""
    (old_hashes, old_keys), (new_hashes, new_keys) = older, newer
    places = old_hashes.searchsorted(new_hashes, "right") + np.arange(len(new_hashes))
    size = len(old_hashes) + len(new_hashes)
    hashes, keys = np.empty(size, np.uint64), np.empty(size, KEY)
    old = np.ones(size, bool)
    old[places] = False
    hashes[places], keys[places] = new_hashes, new_keys
    hashes[old], keys[old] = old_hashes, old_keys
    return hashes, keys
