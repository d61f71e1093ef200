"""The numbers of a data report, gathered one example at a time (the files are never held in memory).

Lengths are kept as compact integer arrays for the histograms; the vocabulary is exact; n-grams are counted
over the first `ngram_examples` examples only, since their counts would otherwise grow with the corpus.
"""

from __future__ import annotations

import heapq
import re
import statistics
from array import array
from collections import Counter

from tunesmith.config.prepare import ReportSettings
from tunesmith.data.formats import Example
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
        self.prompt = array("l")
        self.response = array("l")
        self.turns: Counter[int] = Counter()
        self.labels: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()
        self.vocabulary: set[str] = set()
        self.ngrams = {n: Counter() for n in NGRAM_SIZES} if ngrams else {}
        self.ngram_examples = 0

    def add(self, example: Example, lengths: Lengths, label: str | None, source: str, copies: int = 1) -> None:
        self.examples += copies
        self.prompt.extend([lengths.prompt] * copies)
        self.response.extend([lengths.response] * copies)
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
            "tokens": sum(self.prompt) + sum(self.response),
            "prompt": describe(self.prompt),
            "response": describe(self.response),
            "turns": {str(k): v for k, v in sorted(self.turns.items())},
            "labels": labels,
            "imbalance_ratio": round(max(labels.values()) / min(labels.values()), 2) if len(labels) > 1 else None,
            "sources": dict(self.sources),
            "vocabulary": len(self.vocabulary),
            "ngram_examples": self.ngram_examples,
            "top_ngrams": {str(n): _top(counter, self.settings.top_ngrams) for n, counter in self.ngrams.items()},
        }


def _top(counter: Counter, k: int) -> list[list]:
    """The k most frequent n-grams, ties in alphabetical order (a partial sort: the counter can be large)."""
    best = heapq.nsmallest(k, counter.items(), key=lambda item: (-item[1], item[0]))
    return [[" ".join(gram), count] for gram, count in best]


def describe(values: array) -> dict:
    if not values:
        return {"total": 0, "min": 0, "max": 0, "mean": 0.0, "median": 0.0, "histogram": {"edges": [], "counts": []}}
    import numpy as np

    counts, edges = np.histogram(np.asarray(values), bins=min(HISTOGRAM_BINS, max(values) - min(values) + 1))
    return {
        "total": sum(values),
        "min": min(values),
        "max": max(values),
        "mean": round(sum(values) / len(values), 2),
        "median": float(statistics.median(values)),
        "histogram": {"edges": [round(float(e), 2) for e in edges], "counts": [int(c) for c in counts]},
    }
