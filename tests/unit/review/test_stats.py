"""The tally's statistics against published and hand-computed values."""

import pytest

from tunesmith.review.stats import cohen_kappa, fleiss_kappa, item_agreement, wilson_interval


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Wilson score intervals at 95% (the same values as scipy.stats.binomtest(k, n).proportion_ci("wilson")).
        (8, 10, 0.4902, 0.9433),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (3, 4, 0.3006, 0.9544),
        (81, 263, 0.2553, 0.3662),
    ],
)
def test_wilson_interval_matches_known_values(successes, n, low, high):
    assert wilson_interval(successes, n) == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_takes_half_wins_and_is_symmetric():
    low, high = wilson_interval(2.5, 5)  # ties count half: 2 wins + 1 tie of 5
    assert (low + high) / 2 == pytest.approx(0.5)
    assert wilson_interval(1.5, 5) == pytest.approx(tuple(1 - x for x in reversed(wilson_interval(3.5, 5))))


def test_wilson_interval_narrows_with_more_data():
    small, large = wilson_interval(6, 10), wilson_interval(60, 100)
    assert large[1] - large[0] < small[1] - small[0]


def test_wilson_interval_needs_an_observation():
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_cohen_kappa_textbook_example():
    # Two raters, 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15: p_o = 0.7, p_e = 0.5, kappa = 0.4.
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)


def test_cohen_kappa_hand_computed_three_categories():
    # p_o = 3/4; marginals rater 1 (T2, B1, tie1), rater 2 (T1, B2, tie1): p_e = (2+2+1)/16; kappa = 7/11.
    pairs = [("tuned", "tuned"), ("tuned", "baseline"), ("baseline", "baseline"), ("tie", "tie")]
    assert cohen_kappa(pairs) == pytest.approx(7 / 11)


def test_cohen_kappa_is_undefined_when_everyone_always_says_the_same():
    assert cohen_kappa([("tuned", "tuned")] * 3) is None


def test_fleiss_kappa_textbook_example():
    # Fleiss' kappa worked example (10 items, 14 raters, 5 categories): P = 0.378, P_e = 0.213, kappa = 0.210.
    table = [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ]
    assert fleiss_kappa(table) == pytest.approx(0.2099, abs=5e-4)


def test_fleiss_kappa_hand_computed():
    # P_i = 1, 1/3, 0 -> P = 4/9; shares 6/9, 2/9, 1/9 -> P_e = 41/81; kappa = (36/81 - 41/81) / (40/81) = -1/8.
    table = [[3, 0, 0], [2, 1, 0], [1, 1, 1]]
    assert [item_agreement(row) for row in table] == pytest.approx([1, 1 / 3, 0])
    assert fleiss_kappa(table) == pytest.approx(-0.125)


def test_fleiss_kappa_equals_cohen_for_two_raters_with_equal_marginals():
    # With two raters Fleiss uses pooled marginals (Scott's pi); with identical marginals it equals Cohen's kappa.
    pairs = [("tuned", "baseline"), ("baseline", "tuned"), ("tuned", "tuned"), ("tie", "tie")]
    table = [[sum(r == c for r in pair) for c in ("tuned", "baseline", "tie")] for pair in pairs]
    assert fleiss_kappa(table) == pytest.approx(cohen_kappa(pairs))


def test_fleiss_kappa_accepts_items_with_different_numbers_of_raters():
    # Items with 2 and 3 raters: P = (1 + 1/3) / 2 = 2/3; shares over 5 ratings 4/5, 1/5 -> P_e = 17/25.
    assert fleiss_kappa([[2, 0], [2, 1]]) == pytest.approx((2 / 3 - 17 / 25) / (1 - 17 / 25))


def test_fleiss_kappa_is_undefined_when_every_vote_is_in_one_category():
    assert fleiss_kappa([[3, 0], [2, 0]]) is None
