import numpy as np
import pytest

from tunesmith.config.eval_metrics import ComparisonSettings
from tunesmith.evaluate.bootstrap import MIN_EXAMPLES, Difference, paired_difference, resample_counts, verdict
from tunesmith.evaluate.comparison import compare_rows, headline_metric
from tunesmith.evaluate.metrics import PERPLEXITY, TEXT_METRICS, mean_statistics
from tunesmith.evaluate.rows import Row
from tunesmith.errors import ConfigError

EXACT = TEXT_METRICS["exact_match"]


def correct(rng, n: int, p: float) -> np.ndarray:
    return mean_statistics(100.0 * (rng.random(n) < p))


def test_interval_covers_the_true_difference_at_about_its_confidence():
    """200 synthetic test sets of 100 paired examples with a known true difference of +16 points."""
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(200):
        difficulty = rng.random(100)  # paired: an example hard for one row tends to be hard for the other
        baseline = difficulty < 0.5  # right with probability 0.5
        tuned = (difficulty < 0.7) ^ (rng.random(100) < 0.1)  # 0.7 * 0.9 + 0.3 * 0.1 = 0.66
        d = paired_difference(EXACT, mean_statistics(100.0 * tuned), mean_statistics(100.0 * baseline), "few_shot",
                              resample_counts(100, 400, trial), 0.95)
        covered += d.low <= 16.0 <= d.high
    assert 0.88 <= covered / 200 <= 0.99


def test_interval_brackets_the_observed_difference_and_narrows_with_more_data():
    rng = np.random.default_rng(1)
    widths = []
    for n in (50, 800):
        tuned, baseline = correct(rng, n, 0.8), correct(rng, n, 0.4)
        d = paired_difference(EXACT, tuned, baseline, "zero_shot", resample_counts(n, 1000, 0), 0.95)
        assert d.low < d.delta < d.high
        widths.append(d.high - d.low)
    assert widths[1] < widths[0] / 2


def test_same_seed_same_interval():
    rng = np.random.default_rng(2)
    tuned, baseline = correct(rng, 60, 0.6), correct(rng, 60, 0.5)
    a = paired_difference(EXACT, tuned, baseline, "zero_shot", resample_counts(60, 500, 7), 0.95)
    b = paired_difference(EXACT, tuned, baseline, "zero_shot", resample_counts(60, 500, 7), 0.95)
    assert a == b


def test_verdicts_beats_worse_and_no_significant_difference():
    rng = np.random.default_rng(3)
    counts = resample_counts(200, 1000, 0)
    better = paired_difference(EXACT, correct(rng, 200, 0.8), correct(rng, 200, 0.3), "few_shot", counts, 0.95)
    line = verdict(better, "few-shot prompting (k=3)")
    assert line.startswith(f"fine-tuning beats few-shot prompting (k=3) by +{better.delta:.1f} exact match, 95% CI [")
    assert line.endswith("(n=200)")
    worse = paired_difference(EXACT, correct(rng, 200, 0.3), correct(rng, 200, 0.8), "zero_shot", counts, 0.95)
    assert verdict(worse, "the base model zero-shot").startswith("fine-tuning is worse than the base model zero-shot")
    same = mean_statistics(100.0 * (rng.random(200) < 0.5))
    noise = same.copy()
    noise[:6, 0] = 100.0 - noise[:6, 0]  # six examples flip: a tiny difference the interval must not call real
    tie = paired_difference(EXACT, noise, same, "few_shot", counts, 0.95)
    assert tie.low < 0 < tie.high and not tie.significant
    assert verdict(tie, "few-shot prompting").startswith(
        "no significant difference between fine-tuning and few-shot prompting on exact match")


def test_lower_is_better_metrics_read_the_right_way_round():
    tuned = np.array([[2.0, 4.0]] * 30)  # (summed token loss, tokens): loss 0.5 per token
    baseline = np.array([[4.0, 4.0]] * 30)
    d = paired_difference(PERPLEXITY, tuned, baseline, "zero_shot", resample_counts(30, 200, 0), 0.95)
    assert d.delta == pytest.approx(np.exp(0.5) - np.e) and d.tuned_better and d.significant
    assert verdict(d, "x").startswith("fine-tuning beats x by -1.07 perplexity")


def test_too_few_examples_never_claim_a_difference():
    d = Difference("exact_match", "zero_shot", 100.0, 100.0, 100.0, 0.95, MIN_EXAMPLES - 1)
    assert not d.significant
    assert verdict(d, "the base model zero-shot").startswith("too few test examples")


def test_comparison_gives_every_metric_against_every_baseline_and_one_verdict_each():
    rng = np.random.default_rng(4)
    metrics = [EXACT, TEXT_METRICS["rouge_l"]]

    def row(name, p):
        stats = correct(rng, 40, p)
        return Row(name, ["a"] * 40, {"exact_match": stats, "rouge_l": stats})

    rows = {"zero_shot": row("zero_shot", 0.2), "few_shot": row("few_shot", 0.5), "tuned": row("tuned", 0.9)}
    result = compare_rows(rows, metrics, ComparisonSettings(bootstrap_resamples=300, few_shot_k=4))
    assert [(d.baseline, d.metric) for d in result.differences] == [
        ("zero_shot", "exact_match"), ("zero_shot", "rouge_l"), ("few_shot", "exact_match"), ("few_shot", "rouge_l")]
    assert result.headline == "exact_match"
    assert result.verdicts[0].startswith("fine-tuning beats the base model zero-shot by")
    assert result.verdicts[1].startswith("fine-tuning beats few-shot prompting (k=4) by")


def test_headline_prefers_task_metrics_and_checks_the_requested_one():
    metrics = [PERPLEXITY, TEXT_METRICS["bleu"], EXACT]
    assert headline_metric(metrics, None) == "exact_match"
    assert headline_metric(metrics[:2], None) == "perplexity"
    assert headline_metric(metrics, "bleu") == "bleu"
    with pytest.raises(ConfigError, match="'format' is not among the computed metrics"):
        headline_metric(metrics, "format")
