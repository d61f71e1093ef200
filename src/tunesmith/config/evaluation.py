"""The `eval:` section: what a run and `tunesmith eval` score, on how many examples, against which baselines."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from tunesmith.config.eval_metrics import ComparisonSettings, TaskMetrics
from tunesmith.config.section import Section, one_error

ScratchLearningRate = Annotated[
    Annotated[float, Field(gt=0)] | Literal["auto"],
    one_error("Input should be a number above 0, or 'auto' (GPT-3's pretraining rate for the nearest model size)"),
]


class ScratchBaseline(Section):
    """`tunesmith eval --baselines scratch`: how the from-scratch twin of the run trains (the rest is the run's)."""

    learning_rate: ScratchLearningRate = Field(
        "auto", description="auto: GPT-3's pretraining rate for the nearest model size (Brown et al. 2020)"
    )


class EvalConfig(Section):
    metrics: list[Literal["perplexity", "bleu", "chrf", "rouge_1", "rouge_2", "rouge_l", "exact_match"]] = [
        "perplexity",
        "bleu",
        "rouge_l",
        "exact_match",
    ]
    max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(8, ge=1)
    max_examples: int | None = Field(None, ge=1, description="score only the first N test examples")
    compare_base: bool = Field(True, description="score the base model too (zero-shot), before training")
    forgetting: bool = Field(True, description="with compare_base: perplexity on general text before and after "
                                               "training (the forgetting check)")
    few_shot: bool = Field(True, description="with compare_base: also the base model few-shot "
                                             "(eval.comparison.few_shot_k training examples in the prompt)")
    task: TaskMetrics = Field(default_factory=TaskMetrics, description="label, JSON and format-adherence metrics")
    comparison: ComparisonSettings = Field(default_factory=ComparisonSettings,
                                           description="few-shot k, bootstrap resamples, forgetting threshold")
    scratch: ScratchBaseline = Field(default_factory=ScratchBaseline,
                                     description="the from-scratch baseline's learning rate")
