"""metrics.jsonl: a subscriber of the run's events writing one JSON object per logged step and per evaluation,
appended and flushed as it happens."""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith import events as ev


class MetricsLog:
    def __init__(self, path: Path):
        self.path = path
        self.handlers = {"training_started": self._start, "step": self._step, "evaluation": self._evaluation}

    def __call__(self, event: ev.Event) -> None:
        handler = self.handlers.get(event.type)
        if handler:
            handler(event)

    def _step(self, event: ev.Step) -> None:
        unit = event.unit
        self._write(type="train", step=event.step, epoch=event.epoch, loss=event.loss, lr=event.learning_rate,
                    grad_norm=event.grad_norm, **{f"{unit}_per_s": event.throughput, f"{unit}_seen": event.seen},
                    elapsed=event.elapsed_s)

    def _evaluation(self, event: ev.Evaluation) -> None:
        self._write(type="eval", step=event.step, val_loss=event.val_loss, **event.metrics)

    def _start(self, event: ev.TrainingStarted) -> None:
        if event.resumed and self.path.is_file():
            # Entries written after the checkpoint we resume from will be written again: drop them.
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= event.step]
            self.path.write_text("".join(line + "\n" for line in kept))
        elif not event.resumed:
            self.path.write_text("")

    def _write(self, **record) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
