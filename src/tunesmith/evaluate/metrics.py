"""Metrics as per-example sufficient statistics: a corpus score, one example's score and a bootstrap resample are
each a sum of rows away.

Every metric except perplexity is on a 0-100 scale so a report can put them side by side. BLEU and chrF keep
sacrebleu's own statistics (n-gram matches and totals), so a corpus score equals sacrebleu's corpus score and a
resample is scored exactly as sacrebleu's own paired bootstrap would. Mean metrics keep (score, 1) per example.
sacrebleu and rouge-score (which pulls in nltk) are imported inside the scorers: they add ~0.2 s to a CLI start.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache

import numpy as np

# exp(709.78) is the largest float64; stop a little before it instead of raising OverflowError.
_MAX_LOSS_FOR_EXP = 700.0


@dataclass(frozen=True)
class Metric:
    name: str
    corpus: Callable[[np.ndarray], float]  # summed statistics -> score
    statistics: Callable[[list[str], list[str]], np.ndarray] | None = None  # (answers, references) -> [n, k]
    example: Callable[[np.ndarray], float] | None = None  # one example's statistics -> its score, where not corpus
    lower_is_better: bool = False
    pass_fail: bool = False  # each example scores 0 or 100 (or a share of checks passed)

    def score(self, stats: np.ndarray) -> float:
        return self.corpus(stats.sum(axis=0))

    def per_example(self, stats: np.ndarray) -> list[float]:
        one = self.example or self.corpus
        return [one(row) for row in stats]


def perplexity(mean_token_loss: float) -> float:
    """Perplexity from the mean per-token cross-entropy (natural log), inf when it would overflow."""
    if mean_token_loss > _MAX_LOSS_FOR_EXP:
        return float("inf")
    return math.exp(mean_token_loss)


def mean_of(stats: np.ndarray) -> float:
    """The score of (sum of scores, count) statistics."""
    return float(stats[0] / stats[1]) if stats[1] else float("nan")


def mean_statistics(scores: Iterable[float]) -> np.ndarray:
    return np.array([[score, 1.0] for score in scores], dtype=np.float64).reshape(-1, 2)


def _perplexity_of(stats: np.ndarray) -> float:
    """(summed token loss, token count) -> perplexity."""
    return perplexity(stats[0] / stats[1]) if stats[1] else float("nan")


PERPLEXITY = Metric("perplexity", _perplexity_of, lower_is_better=True)


@cache
def _sacrebleu(name: str, sentence: bool = False):
    import sacrebleu

    if name == "bleu":
        # Sentence BLEU without effective order is 0 for any answer shorter than 4 words; sacrebleu recommends it.
        return sacrebleu.BLEU(effective_order=sentence)
    return sacrebleu.CHRF()


def _sacrebleu_statistics(name: str) -> Callable[[list[str], list[str]], np.ndarray]:
    def statistics(answers: list[str], references: list[str]) -> np.ndarray:
        return np.array(_sacrebleu(name)._extract_corpus_statistics(answers, [references]), dtype=np.float64)

    return statistics


def _sacrebleu_score(name: str, sentence: bool = False) -> Callable[[np.ndarray], float]:
    return lambda stats: float(_sacrebleu(name, sentence)._compute_score_from_stats(stats).score)


def _rouge_statistics(kind: str) -> Callable[[list[str], list[str]], np.ndarray]:
    def statistics(answers: list[str], references: list[str]) -> np.ndarray:
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer([kind], use_stemmer=True)
        return mean_statistics(100.0 * scorer.score(ref, answer)[kind].fmeasure for answer, ref in zip(answers, references))

    return statistics


def normalize_answer(text: str) -> str:
    """What exact match compares: Unicode compatibility forms folded (NFKC: full-width digits, ligatures, non-breaking
    spaces), case folded, surrounding whitespace stripped and every run of whitespace (newlines included) made one
    space. Punctuation and articles are kept: in generated answers they are part of what was asked for."""
    return " ".join(unicodedata.normalize("NFKC", text).split()).casefold()


def _exact_match_statistics(answers: list[str], references: list[str]) -> np.ndarray:
    return mean_statistics(100.0 * (normalize_answer(a) == normalize_answer(r)) for a, r in zip(answers, references))


TEXT_METRICS: dict[str, Metric] = {
    "bleu": Metric("bleu", _sacrebleu_score("bleu"), _sacrebleu_statistics("bleu"), _sacrebleu_score("bleu", True)),
    "chrf": Metric("chrf", _sacrebleu_score("chrf"), _sacrebleu_statistics("chrf")),
    "rouge_1": Metric("rouge_1", mean_of, _rouge_statistics("rouge1")),
    "rouge_2": Metric("rouge_2", mean_of, _rouge_statistics("rouge2")),
    "rouge_l": Metric("rouge_l", mean_of, _rouge_statistics("rougeL")),
    "exact_match": Metric("exact_match", mean_of, _exact_match_statistics, pass_fail=True),
}
KNOWN_METRICS = ("perplexity", *TEXT_METRICS)


def check_metric_names(names: Iterable[str]) -> list[str]:
    names = list(names)
    unknown = [name for name in names if name not in KNOWN_METRICS]
    if unknown:
        raise ValueError(f"Unknown metric(s) {', '.join(map(repr, unknown))}; known metrics: {', '.join(KNOWN_METRICS)}")
    return names


def check_pairs(answers: list[str], references: list[str]) -> None:
    if not answers or not references:
        raise ValueError("text metrics need at least one prediction and one reference")
    if len(answers) != len(references):
        raise ValueError(f"{len(answers)} predictions but {len(references)} references; they must pair up")


def text_metrics(predictions: list[str], references: list[str], metrics: Iterable[str]) -> dict[str, float]:
    """Corpus scores of predictions against references ('perplexity' is skipped: it needs the loss)."""
    names = check_metric_names(metrics)
    check_pairs(predictions, references)
    chosen = [TEXT_METRICS[name] for name in names if name in TEXT_METRICS]
    return {metric.name: metric.score(metric.statistics(predictions, references)) for metric in chosen}
