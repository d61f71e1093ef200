"""Text metrics for generated answers (BLEU, chrF, ROUGE-L, exact match) and perplexity from loss.

Every text metric is on a 0-100 scale so a report can put them side by side. sacrebleu and rouge-score
(which pulls in nltk) are imported inside the scorers: together they add ~0.2 s to every CLI start.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

TEXT_METRICS = ("bleu", "chrf", "rouge_l", "exact_match")
KNOWN_METRICS = ("perplexity",) + TEXT_METRICS

# exp(709.78) is the largest float64; stop a little before it instead of raising OverflowError.
_MAX_LOSS_FOR_EXP = 700.0


def perplexity(mean_token_loss: float) -> float:
    """Perplexity from the mean per-token cross-entropy (natural log), inf when it would overflow."""
    if mean_token_loss > _MAX_LOSS_FOR_EXP:
        return float("inf")
    return math.exp(mean_token_loss)


def _bleu(predictions: list[str], references: list[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu(predictions, [references]).score)


def _chrf(predictions: list[str], references: list[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_chrf(predictions, [references]).score)


def _rouge_l(predictions: list[str], references: list[str]) -> float:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    f1s = [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references)]
    return 100.0 * sum(f1s) / len(f1s)


def normalize_answer(text: str) -> str:
    """Strip, collapse runs of whitespace and casefold: differences that do not change the answer."""
    return " ".join(text.split()).casefold()


def _exact_match(predictions: list[str], references: list[str]) -> float:
    hits = sum(normalize_answer(p) == normalize_answer(r) for p, r in zip(predictions, references))
    return 100.0 * hits / len(predictions)


_SCORERS: dict[str, Callable[[list[str], list[str]], float]] = {
    "bleu": _bleu,
    "chrf": _chrf,
    "rouge_l": _rouge_l,
    "exact_match": _exact_match,
}


def text_metrics(predictions: list[str], references: list[str], metrics: Iterable[str]) -> dict[str, float]:
    """Score predictions against references with the requested metrics ('perplexity' is skipped: it needs loss)."""
    names = list(metrics)
    unknown = [name for name in names if name not in KNOWN_METRICS]
    if unknown:
        raise ValueError(f"Unknown metric(s) {', '.join(map(repr, unknown))}; known metrics: {', '.join(KNOWN_METRICS)}")
    if not predictions or not references:
        raise ValueError("text_metrics needs at least one prediction and one reference")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references; they must pair up")
    return {name: _SCORERS[name](predictions, references) for name in names if name in _SCORERS}
