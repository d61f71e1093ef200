"""The compact index behind deduplication: the same answers as a dict of sets, in a fixed number of bytes per entry."""

import random
import tracemalloc

import numpy as np

from tunesmith.data.prepare.hash_index import HashIndex


def test_lookups_match_a_dict_of_sets_across_pending_entries_runs_and_merges():
    rng = random.Random(0)
    index, reference = HashIndex(pending=64, max_run=512), {}
    values = [rng.getrandbits(64) for _ in range(300)]  # few enough that many keys share a hash
    for key in range(2_000):
        hashes = rng.sample(values, 3)
        index.add(hashes, key)
        for value in hashes:
            reference.setdefault(value, set()).add(key)
        if key % 97 == 0:
            probe = rng.sample(values, 4) + [rng.getrandbits(64)]  # and one hash that was never added
            assert index.keys(np.array(probe, np.uint64)) == set().union(*(reference.get(v, set()) for v in probe))
    assert len(index) == 6_000
    assert len(index._runs) > 2 and max(len(hashes) for hashes, _ in index._runs) <= 512  # merged, then capped


def test_memory_is_twelve_bytes_an_entry():
    # 16 band hashes and one text hash per example: ~200 bytes an example, where datasketch's dict storage took
    # ~4,700. Counted when the pending dict has just been flushed, so only the sorted arrays remain.
    rng = np.random.default_rng(0)
    entries = 1 << 18
    hashes = rng.integers(0, 2**63, size=entries, dtype=np.uint64).tolist()
    tracemalloc.start()
    try:
        index = HashIndex(pending=1 << 14, max_run=1 << 16)
        for key in range(0, entries, 16):
            index.add(hashes[key: key + 16], key)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(index) == entries and index.nbytes == 12 * entries  # nothing left pending
    assert held < 12.5 * entries
    # A merge copies at most two runs of max_run entries; the pending dict holds at most `pending` entries.
    assert peak < held + 26 * (1 << 16) + 200 * (1 << 14)


def test_a_hash_added_twice_for_one_key_is_kept_once():
    index = HashIndex(pending=4, max_run=64)
    index.add([7, 7, 8], key=1)
    index.add([7], key=2)
    assert len(index) == 3
    index.add([9], key=3)  # the fourth entry flushes them into a run
    assert index.keys(np.array([7, 9], np.uint64)) == {1, 2, 3} and len(index) == 4
