"""Job events: the service's own (validated, started, re-queued, ...) and every event of the core's stream.

A core event is stored whole in `data` (its `to_dict()`), with a one-line message people read and OpenAI's
`type` (metrics for steps and evaluations). Server paths in it are replaced by the ids the tenant knows, so
events never reveal the storage layout.
"""

from __future__ import annotations

from typing import Any, Callable

from sqlalchemy.orm import Session

from tunesmith.serve.db import now
from tunesmith.serve.ids import new_id
from tunesmith.serve.tables import JobEvent

METRIC_EVENTS = ("step", "evaluation")
LEVELS = {"run_failed": "error", "run_interrupted": "warn"}
SERVER_PATH_KEYS = ("run_dir", "output", "path")


def _loss(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else str(value)


MESSAGES: dict[str, Callable[[dict], str]] = {
    "run_started": lambda e: f"Run started: {e['config']['method']['name']} on {e['config']['model']}",
    "plan": lambda e: (f"Training plan: {e['plan']['method']} with {e['plan']['trainable']:,} trainable parameters "
                       f"on {e['plan']['device']}"),
    "base_scoring_started": lambda e: f"Scoring the base model on {e['n']} examples",
    "base_scoring_finished": lambda e: "Base model scored",
    "training_started": lambda e: (f"Training resumed at step {e['step']} of {e['total_steps']}" if e.get("resumed")
                                   else f"Training started: {e['total_steps']} steps"),
    "step": lambda e: f"Step {e['step']}/{e['total_steps']}: training loss={_loss(e['loss'])}",
    "evaluation": lambda e: f"Step {e['step']}: validation loss={_loss(e['val_loss'])}",
    "checkpoint": lambda e: f"Checkpoint saved at step {e['step']}",
    "learning_rate_chosen": lambda e: f"Learning rate chosen: {e['rate']:.3g} ({e['reason']})",
    "batch_size_reduced": lambda e: (f"Batches cut into micro-batches of {e['micro_batch']} (up to "
                                     f"{e['gradient_accumulation']} per step): {e['reason']}"),
    "round_started": lambda e: f"Refinement round {e['index']}/{e['total']} started",
    "round_finished": lambda e: f"Refinement round {e['index']}/{e['total']}: {e['metric']}={_loss(e['value'])}",
    "scores": lambda e: "Base and tuned model scored on the same examples",
    "run_finished": lambda e: "Training finished",
    "run_interrupted": lambda e: e["message"],
    "run_failed": lambda e: e["message"],
}


def add_event(session: Session, job_seq: int, message: str, *, level: str = "info", type: str = "message",
              data: dict | None = None) -> JobEvent:
    row = JobEvent(id=new_id("ftevent"), job_seq=job_seq, created_at=now(), level=level, type=type,
                   message=message, data=data)
    session.add(row)
    return row


def add_core_event(session: Session, job_seq: int, event: dict, known_paths: dict[str, str]) -> JobEvent:
    """Store one core event (as `to_dict()` gives it); `known_paths` maps server paths to what the tenant sees."""
    kind = event.get("type", "event")
    data = _scrub({k: v for k, v in event.items() if k not in SERVER_PATH_KEYS}, _inner_first(known_paths))
    return add_event(session, job_seq, _message(kind, data), level=LEVELS.get(kind, "info"),
                     type="metrics" if kind in METRIC_EVENTS else "message", data=data)


def _message(kind: str, data: dict) -> str:
    """The event's line; an event whose fields differ from what the line expects still gets stored."""
    try:
        return MESSAGES[kind](data)
    except (KeyError, TypeError, ValueError, AttributeError):
        return kind.replace("_", " ")


def scrub_text(text: str, known_paths: dict[str, str]) -> str:
    """`text` with each server path in `known_paths` replaced by what the tenant sees."""
    return _scrub(text, _inner_first(known_paths))


def _inner_first(known_paths: dict[str, str]) -> dict[str, str]:
    return dict(sorted(known_paths.items(), key=lambda item: -len(item[0])))


def _scrub(value: Any, known_paths: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v, known_paths) for k, v in value.items() if k != "output_dir"}
    if isinstance(value, list):
        return [_scrub(v, known_paths) for v in value]
    if isinstance(value, str):
        for path, shown in known_paths.items():
            value = value.replace(path, shown)
    return value
