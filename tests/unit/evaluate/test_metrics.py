import math

import pytest

from tunesmith.evaluate.metrics import KNOWN_METRICS, TEXT_METRICS, perplexity, text_metrics

SENTENCE = "the cat sat on the mat"


def test_identical_texts_score_100_on_every_text_metric():
    scores = text_metrics([SENTENCE, "a quick brown fox jumps"], [SENTENCE, "a quick brown fox jumps"], TEXT_METRICS)
    assert scores == pytest.approx({name: 100.0 for name in TEXT_METRICS})


def test_disjoint_texts_score_zero():
    scores = text_metrics(["a b c d e"], ["f g h i j"], ["bleu", "rouge_l", "exact_match"])
    assert scores == {"bleu": 0.0, "rouge_l": 0.0, "exact_match": 0.0}


def test_partial_overlap_matches_hand_computed_values():
    scores = text_metrics(["the cat is on the mat"], [SENTENCE], ["bleu", "rouge_l"])
    # n-gram precisions 5/6, 3/5, 1/4 and 0/3, which sacrebleu's default "exp" smoothing turns into 1/(2*3).
    expected_bleu = 100 * (5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25
    assert scores["bleu"] == pytest.approx(expected_bleu, abs=1e-6)
    # Longest common subsequence "the cat on the mat": 5 of 6 tokens on both sides.
    assert scores["rouge_l"] == pytest.approx(100 * 5 / 6)


def test_rouge_l_averages_per_pair_and_stems():
    scores = text_metrics(["cats running", "x"], ["cat runs", "y"], ["rouge_l"])
    assert scores["rouge_l"] == pytest.approx(50.0)


def test_chrf_rewards_partial_character_overlap():
    score = text_metrics(["the cats sat"], ["the cat sat"], ["chrf"])["chrf"]
    assert 0 < score < 100


def test_exact_match_ignores_case_and_whitespace_only():
    predictions = ["  Boil the  EGG\nfor 6 minutes ", "Boil the egg for 6 minutes.", "hello"]
    references = ["boil the egg for 6 minutes", "boil the egg for 6 minutes", "hello"]
    assert text_metrics(predictions, references, ["exact_match"]) == {"exact_match": pytest.approx(200 / 3)}


def test_only_requested_metrics_are_computed_and_perplexity_is_skipped():
    assert list(text_metrics(["a"], ["a"], ["perplexity", "exact_match"])) == ["exact_match"]


def test_unknown_metric_names_it_and_the_known_ones():
    with pytest.raises(ValueError) as error:
        text_metrics(["a"], ["a"], ["bleu", "meteor"])
    message = str(error.value)
    assert "'meteor'" in message
    assert all(name in message for name in KNOWN_METRICS)


def test_empty_or_mismatched_inputs_are_rejected():
    with pytest.raises(ValueError):
        text_metrics([], [], ["bleu"])
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        text_metrics(["a", "b"], ["a"], ["bleu"])


def test_perplexity_is_exp_of_loss_and_caps_at_infinity():
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(12.5)) == pytest.approx(12.5)
    assert math.isfinite(perplexity(699.0))
    assert perplexity(701.0) == math.inf


def test_rouge_1_and_2_match_hand_counts():
    # 5 of 6 unigrams shared both ways; bigrams: "the cat", "on the", "the mat" shared of 5 on each side.
    scores = text_metrics(["the cat is on the mat"], [SENTENCE], ["rouge_1", "rouge_2"])
    assert scores["rouge_1"] == pytest.approx(100 * 5 / 6)
    assert scores["rouge_2"] == pytest.approx(100 * 3 / 5)


def test_corpus_bleu_sums_statistics_and_per_example_bleu_uses_effective_order():
    import sacrebleu

    from tunesmith.evaluate.metrics import TEXT_METRICS

    answers, references = ["the cat is on the mat", "hello world there", "a b"], [SENTENCE, "hello world", "c d"]
    bleu = TEXT_METRICS["bleu"]
    stats = bleu.statistics(answers, references)
    assert bleu.score(stats) == pytest.approx(sacrebleu.corpus_bleu(answers, [references]).score)
    # "hello world there" against "hello world": unigrams 2/3, bigrams 1/2, trigrams 0/1 (exp smoothing: 1/2), no
    # 4-gram at all, so effective order 3; the answer is longer than the reference, so no brevity penalty.
    assert bleu.per_example(stats)[1] == pytest.approx(100 * (2 / 3 * 1 / 2 * 1 / 2) ** (1 / 3))
    chrf = TEXT_METRICS["chrf"]
    assert chrf.score(chrf.statistics(answers, references)) == pytest.approx(
        sacrebleu.corpus_chrf(answers, [references]).score)


def test_normalisation_folds_unicode_forms_case_and_whitespace_but_keeps_punctuation():
    from tunesmith.evaluate.metrics import normalize_answer

    assert normalize_answer("  Ｂｏｉｌ\u00a0the ﬁsh\n\n 6 MIN ") == "boil the fish 6 min"
    assert normalize_answer("Boil.") != normalize_answer("boil")
