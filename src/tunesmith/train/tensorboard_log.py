"""TensorBoard (`training.report_to: tensorboard`): one more subscriber of the run's events."""

from __future__ import annotations

from pathlib import Path

from tunesmith import events as ev
from tunesmith.errors import ConfigError


class TensorBoardLog:
    def __init__(self, folder: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("training.report_to: tensorboard needs the tensorboard package: "
                              "pip install tensorboard") from None
        self.writer = SummaryWriter(str(folder))
        self.handlers = {"step": self._step, "evaluation": self._evaluation}

    def __call__(self, event: ev.Event) -> None:
        handler = self.handlers.get(event.type)
        if handler:
            handler(event)

    def _step(self, event: ev.Step) -> None:
        self.writer.add_scalar("train/loss", event.loss, event.step)
        self.writer.add_scalar("train/learning_rate", event.learning_rate, event.step)
        self.writer.add_scalar(f"train/{event.unit}_per_s", event.throughput, event.step)
        if event.grad_norm is not None:
            self.writer.add_scalar("train/grad_norm", event.grad_norm, event.step)

    def _evaluation(self, event: ev.Evaluation) -> None:
        self.writer.add_scalar("eval/val_loss", event.val_loss, event.step)
        for name, value in event.metrics.items():
            self.writer.add_scalar(f"eval/{name}", value, event.step)

    def close(self) -> None:
        self.writer.close()
