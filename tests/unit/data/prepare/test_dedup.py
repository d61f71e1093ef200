"""Deduplication: planted exact and near duplicates are found, distinct examples kept, and the true Jaccard decides."""

import math
import random
import sys
import zlib

import numpy as np
import pytest

from tunesmith.config.prepare import DedupSettings
from tunesmith.data.prepare.dedup import Deduplicator, jaccard, shingles
from tunesmith.data.prepare.examples import compared_parts
from tunesmith.data.prepare.pipeline import from_record
from tunesmith.data.prepare.signatures import BITS, MISS, min_agreements

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


def test_signatures_rule_out_candidates_that_share_a_band_by_chance_unread_and_keep_planted_duplicates():
    # Texts of 40 words from a vocabulary of 20 share many 5-character shingles (true Jaccard 0.25-0.45), so LSH
    # pairs up a hundred or so of 300 by chance, as a templated corpus does at scale: each would cost reading the
    # staged text back. Their signatures agree in too few positions to be at the threshold, so none is read; a copy
    # with one word changed is read and found.
    from tests.unit.data.prepare.conftest import WORDS

    rng = random.Random(0)
    texts = [" ".join(rng.choices(WORDS[:20], k=40)) for _ in range(300)]
    read = []

    def lookup(key):
        read.append(key)
        return "", texts[key]

    dedup, bands, candidates = Deduplicator(DedupSettings(), lookup), [], 0
    for key, text in enumerate(texts):
        match, sketch = dedup.near_match(("", text))
        assert match is None
        own = set(sketch.bands.tolist())
        sharing = [earlier for earlier, theirs in enumerate(bands) if own & theirs]  # what LSH hands on
        # well under the 0.608 that 81 agreeing positions of 128 estimate (signatures.min_agreements)
        assert all(jaccard(shingles(text, 5), shingles(texts[earlier], 5)) < 0.55 for earlier in sharing)
        candidates += len(sharing)
        bands.append(own)
        dedup.remember(key, ("", text), sketch)
    assert candidates > 50 and read == []
    originals = rng.sample(range(len(texts)), 30)
    for key in originals:
        words = texts[key].split()
        words[rng.randrange(len(words))] = rng.choice(WORDS[20:])
        match, _ = dedup.near_match(("", " ".join(words)))
        assert match is not None and match.key == key and match.similarity >= 0.8
    assert read == originals  # each copy's original, and nothing else


def test_a_pair_at_the_threshold_fails_the_signature_check_with_a_chance_under_one_in_a_million():
    def below(num_perm, agree, count):  # P(binomial(num_perm, agree) < count), exactly
        return math.fsum(math.comb(num_perm, k) * agree**k * (1 - agree) ** (num_perm - k) for k in range(count))

    for num_perm, threshold in ((128, 0.8), (64, 0.9), (256, 0.5), (17, 0.8)):
        needed = min_agreements(num_perm, threshold)
        agree = threshold + (1 - threshold) / 2**BITS  # the minima equal, or their low bits by chance
        assert below(num_perm, agree, needed) <= MISS < below(num_perm, agree, needed + 1)
    assert min_agreements(128, 0.8) == 81  # an estimated Jaccard of (81/128 - 1/16) / (15/16) = 0.608
    assert min_agreements(128, 1.0) == 128  # identical sets agree everywhere


@pytest.mark.slow
def test_the_index_costs_a_few_hundred_bytes_per_example():
    # datasketch's in-memory MinHashLSH took ~4,700 bytes per example at 128 permutations; the compact index keeps
    # 17 hashes of 12 bytes (16 bands and the text's digest) and a 64-byte signature, in an array that grows by half
    # its size. Measured between two flushes of its pending dict, so what is counted is the arrays alone.
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
        before, reported = tracemalloc.get_traced_memory()[0], index.dedup.index_bytes
        for text in texts[per_flush:]:
            index.add("", text)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(index.kept) == len(texts)  # all distinct, all indexed
    assert 12 * 17 * len(texts) + 64 * len(texts) <= index.dedup.index_bytes <= (12 * 17 + 64 * 1.5) * len(texts)
    kept = sum(sys.getsizeof(parts) + 8 for parts in index.kept[per_flush:])  # the test's own list of (prompt, text)
    # index_bytes reports what the index allocates: little else grows with the examples
    assert (grown - kept - (index.dedup.index_bytes - reported)) / (len(texts) - per_flush) < 20
