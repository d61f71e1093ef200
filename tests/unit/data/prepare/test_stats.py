"""The report's numbers in bounded memory: lengths as counts per length, the vocabulary exact then estimated."""

import random
import statistics
import tracemalloc
from collections import Counter

import numpy as np

from tunesmith.config.prepare import ReportSettings
from tunesmith.data.formats import Example
from tunesmith.data.prepare.distinct import DistinctCount
from tunesmith.data.prepare.lengths import Lengths
from tunesmith.data.prepare.report import render_markdown
from tunesmith.data.prepare.stats import HISTOGRAM_BINS, SplitStats, describe


def test_lengths_kept_as_counts_describe_exactly_what_the_list_of_lengths_did():
    rng = random.Random(0)
    for case in range(50):
        values = [rng.choice((rng.randrange(5), rng.randrange(3_000))) for _ in range(rng.randrange(1, 400))]
        counts, _ = np.histogram(np.asarray(values), bins=min(HISTOGRAM_BINS, max(values) - min(values) + 1))
        edges = np.histogram_bin_edges(np.asarray(values), bins=min(HISTOGRAM_BINS, max(values) - min(values) + 1))
        assert describe(Counter(values)) == {
            "total": sum(values), "min": min(values), "max": max(values),
            "mean": round(sum(values) / len(values), 2), "median": float(statistics.median(values)),
            "histogram": {"edges": [round(float(e), 2) for e in edges], "counts": [int(c) for c in counts]},
        }, case


def test_the_vocabulary_is_exact_up_to_the_limit():
    count = DistinctCount(exact_limit=1_000)
    count.update(f"w{i % 700}" for i in range(5_000))
    assert (count.exact, count.count()) == (True, 700)


def test_past_the_limit_the_vocabulary_is_estimated_in_a_fixed_few_kilobytes():
    import datasketch  # noqa: F401  (imported before tracing: its modules are not the sketch)

    words = [f"word{i}" for i in range(100_000)]
    tracemalloc.start()
    try:
        count = DistinctCount(exact_limit=10_000)
        for start in range(0, len(words), 1_000):
            count.update(words[start: start + 1_000] + words[:50])  # repeats are not counted twice
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert not count.exact
    assert abs(count.count() - 100_000) < 0.03 * 100_000
    assert held < 100_000  # the 16 KiB sketch, not 100,000 strings (~7 MB in a set)
    again = DistinctCount(exact_limit=10_000)
    for start in range(0, len(words), 7_000):
        again.update(words[start: start + 7_000])
    assert again.count() == count.count()  # the same words, in other batches: the same estimate


def test_a_report_says_when_its_vocabulary_is_an_estimate():
    stats = SplitStats(ReportSettings())
    stats.vocabulary = DistinctCount(exact_limit=50)
    stats.add(Example(text=" ".join(f"w{i}" for i in range(2_000))), Lengths(0, 2_000, 0), None, "train.jsonl")
    summary = stats.summary()
    assert summary["vocabulary_estimated"] and abs(summary["vocabulary"] - 2_000) < 100
    report = {"title": "t", "format": "text", "unit": "words", "inputs": [], "weights": {}, "steps": {
        "check": {"records": 1, "invalid": 0, "quarantine": None, "reasons": {}, "samples": []}},
        "splits": {"all": summary}, "overall": summary}
    text = render_markdown(report)
    assert f"| all | 1 | 2000 | 0.0 | 2000.0 | about {summary['vocabulary']} |" in text
    assert f"Vocabulary: about {summary['vocabulary']:,} distinct words (estimated: past 200,000 words" in text
