"""Deduplication: planted exact and near duplicates are found, distinct examples kept, and the true Jaccard decides."""

import sys
import zlib

import numpy as np
import pytest

from tunesmith.config.prepare import DedupSettings
from tunesmith.data.prepare.dedup import Deduplicator, jaccard, shingles
from tunesmith.data.prepare.examples import compared_parts
from tunesmith.data.prepare.pipeline import from_record

ANSWER = ("Short answer: simmer the rice for 18 minutes with the lid on, then let it rest off the heat for ten "
          "minutes so the grains firm up and separate.")


class Index:
    """A Deduplicator fed like the pipeline feeds it: each kept example remembered under its position."""

    def __init__(self, settings=DedupSettings()):
        self.kept = []
        self.dedup = Deduplicator(settings, lambda key: self.kept[key])

    def add(self, prompt, response):
        parts = (prompt, response)
        match = self.dedup.exact_match(parts)
        sketch = None
        if match is None:
            match, sketch = self.dedup.near_match(parts)
        if match is None:
            self.dedup.remember(len(self.kept), parts, sketch)
            self.kept.append(parts)
        return match


def test_exact_duplicates_ignore_case_spacing_and_punctuation():
    index = Index()
    assert index.add("How do I cook rice?", ANSWER) is None
    match = index.add("how do i  cook RICE", ANSWER.replace(",", "").upper())
    assert (match.key, match.similarity, match.same_prompt) == (0, 1.0, True)


def test_planted_near_duplicates_are_found_with_their_true_jaccard():
    index = Index()
    index.add("How do I cook rice?", ANSWER)
    variant = ANSWER.replace("ten minutes", "10 minutes").replace("firm up", "firm")
    match = index.add("How do I cook rice?", variant)
    expected = jaccard(shingles(f"How do I cook rice?\n{ANSWER}", 5), shingles(f"How do I cook rice?\n{variant}", 5))
    assert match is not None and match.key == 0 and match.same_prompt
    assert match.similarity == expected and 0.8 <= expected < 1.0


def test_distinct_examples_are_all_kept(distinct_chats):
    index = Index()
    matches = [index.add(*compared_parts(from_record(chat))) for chat in distinct_chats(30)]
    assert matches == [None] * 30 and len(index.kept) == 30


def test_the_same_answer_to_another_question_is_similar_not_a_duplicate():
    index = Index()
    index.add("How do I cook rice?", ANSWER)
    match = index.add("Any tips for rice?", ANSWER)
    assert match is not None and match.key == 0 and not match.same_prompt


def test_a_candidate_the_sketches_suggest_is_dropped_when_the_true_jaccard_is_below_the_threshold():
    # The index holds the sketch of one text, but the text it fetches back for the check is another: only the
    # recheck on the real shingles can tell them apart, so a match here would mean the estimate decided alone.
    texts = {0: ("Tell me about bread", ANSWER)}
    dedup = Deduplicator(DedupSettings(), lambda key: texts[key])
    _, sketch = dedup.near_match(("How do I cook rice?", ANSWER))
    dedup.remember(0, ("How do I cook rice?", ANSWER), sketch)
    texts[0] = ("Tell me about bread", "Knead the dough for ten minutes and let it rise somewhere warm.")
    assert dedup.near_match(("How do I cook rice?", ANSWER))[0] is None


def test_threshold_and_shingle_size_are_settings():
    strict, loose = Index(DedupSettings(threshold=0.99)), Index(DedupSettings(threshold=0.5, shingle_size=3))
    variant = ANSWER.replace("ten minutes", "10 minutes")
    for index in (strict, loose):
        index.add("How do I cook rice?", ANSWER)
    assert strict.add("How do I cook rice?", variant) is None
    assert loose.add("How do I cook rice?", variant).key == 0


def graded_variants(n_bases=40, seed=0):
    """Random 'answers' and copies with 1 to 14 words replaced: true Jaccard from ~0.95 down to ~0.4, so some pairs
    sit just above and below the 0.8 threshold, where LSH banding decides whether they are even compared."""
    import random

    from tests.unit.data.prepare.conftest import WORDS

    rng = random.Random(seed)
    texts = []
    for _ in range(n_bases):
        words = rng.sample(WORDS, 40)
        texts.append(" ".join(words))
        for changed in range(1, 15, 2):
            copy = list(words)
            for position in rng.sample(range(len(copy)), changed):
                copy[position] = rng.choice(WORDS)
            texts.append(" ".join(copy))
    return texts


class DatasketchIndex:
    """The index as it was before the compact one: datasketch's MinHashLSH with its in-memory storage."""

    def __init__(self, settings=DedupSettings()):
        from datasketch import MinHash, MinHashLSH

        from tunesmith.data.prepare.dedup import LSH_WEIGHTS, MINHASH_SEED

        self.settings, self.kept = settings, []
        self.sketch = lambda: MinHash(num_perm=settings.num_perm, seed=MINHASH_SEED, hashfunc=zlib.crc32)
        self.lsh = MinHashLSH(threshold=settings.threshold, num_perm=settings.num_perm, weights=LSH_WEIGHTS)

    def add(self, prompt, response):
        own = shingles(f"{prompt}\n{response}", self.settings.shingle_size)
        sketch = self.sketch()
        sketch.update_batch([s.encode() for s in own])
        found = sorted((jaccard(own, shingles("\n".join(self.kept[key]), self.settings.shingle_size)), key)
                       for key in self.lsh.query(sketch))
        found = [(similarity, key) for similarity, key in found if similarity >= self.settings.threshold]
        if not found:
            self.lsh.insert(len(self.kept), sketch)
            self.kept.append((prompt, response))
        return found


def test_the_compact_index_finds_exactly_what_datasketchs_lsh_finds():
    # Same sketches, same bands: the same candidates, so the same pairs found and missed near the threshold.
    compact, reference = Index(DedupSettings(exact=False)), DatasketchIndex()
    found = 0
    for text in graded_variants():
        match, expected = compact.add("", text), reference.add("", text)
        assert (match is None) == (not expected)
        if match is not None:
            found += 1
            best = max(expected, key=lambda pair: (pair[0], -pair[1]))  # the most similar, then the earliest
            assert (match.similarity, match.key) == best
    assert 40 < found < 40 * 7  # some variants are near duplicates and some are not


def test_the_index_keeps_seventeen_hashes_per_example_and_nothing_per_duplicate(distinct_chats):
    index = Index()
    chats = [compared_parts(from_record(chat)) for chat in distinct_chats(40)]
    for parts in chats + chats[:10]:
        index.add(*parts)
    assert index.dedup.index_entries == 17 * 40  # 16 bands at 128 permutations, and the text's digest


@pytest.mark.slow
def test_the_index_costs_a_few_hundred_bytes_per_example():
    # datasketch's in-memory MinHashLSH took ~4,700 bytes per example at 128 permutations; the compact index keeps
    # 17 hashes of 12 bytes (16 bands and the text's digest). Measured between two flushes of its pending dict,
    # so what is counted is the sorted arrays alone.
    import math
    import tracemalloc

    from tests.unit.data.prepare.conftest import WORDS
    from tunesmith.data.prepare.hash_index import PENDING

    per_flush = math.ceil(PENDING / 17)
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, 12)) for _ in range(2 * per_flush)]
    tracemalloc.start()  # before the index exists, so that what it frees later was counted when it was made
    try:
        index = Index()
        for text in texts[:per_flush]:
            index.add("", text)
        before = tracemalloc.get_traced_memory()[0]
        for text in texts[per_flush:]:
            index.add("", text)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(index.kept) == len(texts)  # all distinct, all indexed
    assert index.dedup.index_bytes == 12 * 17 * len(texts)
    kept = sum(sys.getsizeof(parts) + 8 for parts in index.kept[per_flush:])  # the test's own list of (prompt, text)
    assert (grown - kept) / (len(texts) - per_flush) < 12 * 17 + 20
