"""The numbers of a data report, gathered one example at a time (the files are never held in memory).

Lengths are kept as counts per length (a few thousand distinct values, however many examples), from which the
histograms, medians and means are exact; the vocabulary is exact up to distinct.EXACT_WORDS words and estimated
past them; n-grams are counted over the first `ngram_examples` examples only, since their counts would
otherwise grow with the corpus. So a report's memory does not grow with the number of examples.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter

import numpy as np

from tunesmith.config.prepare import ReportSettings
from tunesmith.data.formats import Example
from tunesmith.data.prepare.distinct import DistinctCount
from tunesmith.data.prepare.examples import text_fields
from tunesmith.data.prepare.lengths import Lengths

_WORD = re.compile(r"\w+")
NGRAM_SIZES = (1, 2, 3)
HISTOGRAM_BINS = 20


class SplitStats:
    def __init__(self, settings: ReportSettings, ngrams: bool = True):
        """`ngrams` False skips the n-gram counts (the report shows them for the whole set only)."""
        self.settings = settings
        self.examples = 0
        self.prompt: Counter[int] = Counter()  # length -> examples of that length
        self.response: Counter[int] = Counter()
        self.turns: Counter[int] = Counter()
        self.labels: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()
        self.vocabulary = DistinctCount()
        self.ngrams = {n: Counter() for n in NGRAM_SIZES} if ngrams else {}
        self.ngram_examples = 0

    def add(self, example: Example, lengths: Lengths, label: str | None, source: str, copies: int = 1) -> None:
        self.examples += copies
        self.prompt[lengths.prompt] += copies
        self.response[lengths.response] += copies
        if example.messages is not None:
            self.turns[lengths.turns] += copies
        if label is not None:
            self.labels[str(label)] += copies
        self.sources[source] += copies
        count_ngrams = bool(self.ngrams) and self.ngram_examples < self.settings.ngram_examples
        if count_ngrams:
            self.ngram_examples += 1
        for _, text in text_fields(example):
            words = _WORD.findall(text.casefold())
            self.vocabulary.update(words)
            if count_ngrams:
                for n, counter in self.ngrams.items():
                    counter.update(zip(*(words[i:] for i in range(n))))

    def summary(self) -> dict:
        labels = dict(sorted(self.labels.items(), key=lambda item: (-item[1], item[0])))
        return {
            "examples": self.examples,
            "tokens": _total(self.prompt) + _total(self.response),
            "prompt": describe(self.prompt),
            "response": describe(self.response),
            "turns": {str(k): v for k, v in sorted(self.turns.items())},
            "labels": labels,
            "imbalance_ratio": round(max(labels.values()) / min(labels.values()), 2) if len(labels) > 1 else None,
            "sources": dict(self.sources),
            "vocabulary": self.vocabulary.count(),
            "vocabulary_estimated": not self.vocabulary.exact,
            "ngram_examples": self.ngram_examples,
            "top_ngrams": {str(n): _top(counter, self.settings.top_ngrams) for n, counter in self.ngrams.items()},
        }


def _top(counter: Counter, k: int) -> list[list]:
    """The k most frequent n-grams, ties in alphabetical order (a partial sort: the counter can be large)."""
    best = heapq.nsmallest(k, counter.items(), key=lambda item: (-item[1], item[0]))
    return [[" ".join(gram), count] for gram, count in best]


def _total(counts: Counter[int]) -> int:
    return sum(length * n for length, n in counts.items())


def describe(counts: Counter[int]) -> dict:
    """Total, range, mean, median and a histogram of lengths given as counts per length."""
    counts = Counter({length: n for length, n in counts.items() if n})  # a length added with no copies is not there
    if not counts:
        return {"total": 0, "min": 0, "max": 0, "mean": 0.0, "median": 0.0, "histogram": {"edges": [], "counts": []}}
    values = np.array(sorted(counts), np.int64)
    weights = np.array([counts[v] for v in values.tolist()], np.int64)
    n, total, low, high = int(weights.sum()), _total(counts), int(values[0]), int(values[-1])
    histogram, edges = np.histogram(values, bins=min(HISTOGRAM_BINS, high - low + 1), weights=weights)
    # The median of the expanded values: the middle one, or the mean of the middle two.
    ends = np.cumsum(weights)
    middle = [int(values[np.searchsorted(ends, i, "right")]) for i in ((n - 1) // 2, n // 2)]
    return {
        "total": total,
        "min": low,
        "max": high,
        "mean": round(total / n, 2),
        "median": (middle[0] + middle[1]) / 2,
        "histogram": {"edges": [round(float(e), 2) for e in edges], "counts": [int(c) for c in histogram]},
    }
