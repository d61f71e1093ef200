"""One stream of typed events per run: the progress line, metrics.jsonl, TensorBoard, the Python API's `on_event`
and the job service all subscribe to it.

Every event is a frozen dataclass with a `type` and `to_dict()` (JSON-ready, with the time it happened). Only the
main process emits: the other ranks of a data-parallel run get a stream with no subscribers.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, ClassVar


@dataclass(frozen=True)
class Event:
    type: ClassVar[str] = "event"
    time: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict:
        return {"type": self.type, **{k: _plain(v) for k, v in asdict(self).items()}}


def _plain(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class RunStarted(Event):
    type: ClassVar[str] = "run_started"
    run_dir: Path
    config: dict  # the resolved config


@dataclass(frozen=True)
class Planned(Event):
    """After the base is scored and the method applied, before training: what will train and what it needs."""

    type: ClassVar[str] = "plan"
    plan: dict  # method, trainable/total parameters, memory, precision, device, example counts, checkpointing


@dataclass(frozen=True)
class BaseScoringStarted(Event):
    type: ClassVar[str] = "base_scoring_started"
    n: int


@dataclass(frozen=True)
class BaseScoringFinished(Event):
    type: ClassVar[str] = "base_scoring_finished"
    scores: dict


@dataclass(frozen=True)
class TrainingStarted(Event):
    type: ClassVar[str] = "training_started"
    total_steps: int
    step: int  # where training starts: 0, or the step of the checkpoint it resumes from
    unit: str
    resumed: bool


@dataclass(frozen=True)
class Step(Event):
    type: ClassVar[str] = "step"
    step: int
    total_steps: int
    epoch: int
    loss: float
    learning_rate: float
    grad_norm: float | None
    throughput: float  # `unit` per second over the steps since the last logged one
    unit: str  # "tokens", "images"
    seen: int  # `unit` trained on so far
    elapsed_s: float  # training time (evaluation and saving excluded)
    eta_s: float


@dataclass(frozen=True)
class StepSkipped(Event):
    """A step whose loss or gradient was not finite: dropped, not applied to the weights."""

    type: ClassVar[str] = "step_skipped"
    step: int
    bad_steps: int  # dropped so far in this run
    message: str


@dataclass(frozen=True)
class BatchSizeReduced(Event):
    """batch_size: auto: a step ran out of memory, so each batch is now cut into smaller micro-batches (more of them
    per step: the optimizer step, its loss and the schedule stay the same), or a resumed run starts cut that way."""

    type: ClassVar[str] = "batch_size_reduced"
    step: int  # the step retried at the new size (0: the learning-rate range test; resuming: the next step)
    micro_batch: int  # examples in the largest micro-batch from now on
    gradient_accumulation: int  # micro-batches per optimizer step from now on (at most)
    reason: str


@dataclass(frozen=True)
class LearningRateChosen(Event):
    """learning_rate: auto: the rate the range test chose (or reused on resume), and why."""

    type: ClassVar[str] = "learning_rate_chosen"
    rate: float
    reason: str
    tried: int  # rates tried, one step each (0 when reused)
    low: float  # the range tested
    high: float
    fallback: bool  # the test could not decide: the method's default rate
    reused: bool  # read back from the run folder's lr_range.json on resume


@dataclass(frozen=True)
class Evaluation(Event):
    type: ClassVar[str] = "evaluation"
    step: int
    val_loss: float
    metrics: dict  # what the task derives from the loss, e.g. val_perplexity


@dataclass(frozen=True)
class CheckpointSaved(Event):
    type: ClassVar[str] = "checkpoint"
    step: int
    path: Path


@dataclass(frozen=True)
class StageStarted(Event):
    type: ClassVar[str] = "stage_started"
    index: int  # 1-based
    total: int
    name: str


@dataclass(frozen=True)
class StageFinished(Event):
    type: ClassVar[str] = "stage_finished"
    index: int
    total: int
    name: str
    scores: dict


@dataclass(frozen=True)
class RoundStarted(Event):
    type: ClassVar[str] = "round_started"
    index: int
    total: int


@dataclass(frozen=True)
class RoundFinished(Event):
    type: ClassVar[str] = "round_finished"
    index: int
    total: int
    metric: str
    value: float


@dataclass(frozen=True)
class Scores(Event):
    type: ClassVar[str] = "scores"
    scores: dict


@dataclass(frozen=True)
class RunFinished(Event):
    type: ClassVar[str] = "run_finished"
    run_dir: Path
    output: Path
    scores: dict
    val_loss: float | None


@dataclass(frozen=True)
class RunInterrupted(Event):
    type: ClassVar[str] = "run_interrupted"
    step: int
    message: str


@dataclass(frozen=True)
class RunFailed(Event):
    type: ClassVar[str] = "run_failed"
    message: str


Subscriber = Callable[[Event], None]


class EventStream:
    """Delivers each event to every subscriber, in the order they subscribed."""

    def __init__(self, subscribers: list[Subscriber] | None = None):
        self.subscribers: list[Subscriber] = list(subscribers or [])

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.remove(subscriber)

    def emit(self, event: Event) -> None:
        for subscriber in self.subscribers:
            subscriber(event)
