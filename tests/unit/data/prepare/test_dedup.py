"""Deduplication: planted exact and near duplicates are found, distinct examples kept, and the true Jaccard decides."""

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
