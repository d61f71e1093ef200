"""One row of the comparison: a model (base or tuned) and a way of prompting it, scored on every test example.

A row keeps its answers and each metric's per-example statistics, so the report can show per-example scores and
the bootstrap can resample them. Rows are named zero_shot (the base model as is), few_shot (the base model shown
training examples first), scratch (the architecture trained from random weights on the same budget) and tuned.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from tunesmith.data.formats import Example
from tunesmith.data.tokenize import generation_prompt
from tunesmith.evaluate.generate import generate_texts
from tunesmith.evaluate.losses import answer_encoding, text_encoding, token_losses
from tunesmith.evaluate.metrics import PERPLEXITY, TEXT_METRICS, Metric, check_metric_names
from tunesmith.evaluate.task_metrics import task_metrics



@dataclass(frozen=True)
class Case:
    """A test example as one row's model sees it."""

    prompt: str | None  # rendered for generation; None for raw text, which is scored by perplexity only
    reference: str
    encoded: dict  # input ids and labels on the reference answer, for perplexity


@dataclass
class Row:
    name: str
    answers: list[str]
    stats: dict[str, np.ndarray] = field(default_factory=dict)  # metric -> [n, k] statistics

    def scores(self, metrics: list[Metric]) -> dict:
        return {"n": len(next(iter(self.stats.values()))) if self.stats else 0,
                **{m.name: m.score(self.stats[m.name]) for m in metrics if m.name in self.stats}}

    def per_example(self, metrics: list[Metric]) -> list[dict[str, float]]:
        columns = {m.name: m.per_example(self.stats[m.name]) for m in metrics if m.name in self.stats}
        count = len(next(iter(columns.values()))) if columns else 0
        return [{name: values[i] for name, values in columns.items()} for i in range(count)]

    def to_dict(self) -> dict:
        """JSON-ready, e.g. for a resumed run to reuse the base model's rows instead of scoring them again."""
        return {"name": self.name, "answers": self.answers, "stats": {k: v.tolist() for k, v in self.stats.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "Row":
        return cls(data["name"], data["answers"], {k: np.array(v, dtype=np.float64) for k, v in data["stats"].items()})


def chosen_metrics(names: list[str], task_settings, raw_text: bool) -> list[Metric]:
    """The configured metrics in order, perplexity first; raw text has nothing to generate, so perplexity only."""
    names = check_metric_names(names)
    metrics = [PERPLEXITY] if "perplexity" in names else []
    if raw_text:
        return metrics
    return metrics + [TEXT_METRICS[n] for n in names if n in TEXT_METRICS] + task_metrics(task_settings)


def cases(examples: list[Example], tokenizer, context: int) -> list[Case]:
    out = []
    for example in examples:
        if example.text is not None:
            out.append(Case(None, example.text, text_encoding(example.text, tokenizer, context)))
            continue
        prompt, reference = generation_prompt(example, tokenizer)
        out.append(Case(prompt, reference, answer_encoding(example, tokenizer, context)))
    return out


def references_of(examples: list[Example], tokenizer) -> list[str]:
    """Each example's reference: its final answer, or the whole text of a raw text example."""
    return [e.text if e.text is not None else generation_prompt(e, tokenizer)[1] for e in examples]


def score_row(name: str, model, tokenizer, row_cases: list[Case], metrics: list[Metric], max_new_tokens: int,
              batch_size: int, autocast=nullcontext) -> Row:
    row = Row(name, [])
    if PERPLEXITY in metrics:
        row.stats[PERPLEXITY.name] = token_losses(model, [case.encoded for case in row_cases], autocast)
    generated = [m for m in metrics if m.statistics is not None]
    if generated and all(case.prompt is not None for case in row_cases):
        with autocast():
            row.answers = generate_texts(model, tokenizer, [case.prompt for case in row_cases], max_new_tokens,
                                         batch_size)
        references = [case.reference for case in row_cases]
        for metric in generated:
            row.stats[metric.name] = metric.statistics(row.answers, references)
    return row


@dataclass
class Scorer:
    """What scoring needs besides the model, fixed once per evaluation: `tunesmith eval` and the end of training
    score every row through one of these, so their numbers agree."""

    tokenizer: object
    metrics: list[Metric]
    max_new_tokens: int
    batch_size: int
    context: int  # the model's context length: longer sequences lose tokens from the left
    autocast: Callable = nullcontext

    def row(self, name: str, model, examples: list[Example]) -> Row:
        return score_row(name, model, self.tokenizer, cases(examples, self.tokenizer, self.context), self.metrics,
                         self.max_new_tokens, self.batch_size, self.autocast)

    def text_losses(self, model, passages: list[str], max_length: int) -> np.ndarray:
        """Token-loss statistics of plain text passages (the forgetting check)."""
        encoded = [text_encoding(text, self.tokenizer, min(self.context, max_length)) for text in passages]
        return token_losses(model, encoded, self.autocast)
