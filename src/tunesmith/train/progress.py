"""The progress subscriber: a live bar on a terminal; one plain line per logged step elsewhere (CI logs, `| tee`,
service workers), so a redirected run still shows that it is alive."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tunesmith import events as ev


class TrainingProgress:
    def __init__(self, console: Console):
        self.console = console
        self.live = console.is_terminal
        self.bar: Progress | None = None
        self.handlers = {"training_started": self._start, "step": self._step, "evaluation": self._evaluation,
                         "step_skipped": self._skipped, "batch_size_reduced": self._batch_reduced,
                         "learning_rate_chosen": self._rate_chosen}

    def __call__(self, event: ev.Event) -> None:
        handler = self.handlers.get(event.type)
        if handler and not self.console.quiet:
            handler(event)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def _start(self, event: ev.TrainingStarted) -> None:
        self.close()
        if not self.live:
            where = f"resuming at step {event.step}" if event.resumed else "starting"
            self.console.print(f"train: {event.total_steps} steps, {where}", highlight=False)
            return
        self.bar = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[rate]}"),
            TimeRemainingColumn(), console=self.console, transient=False,
        )
        self.bar_id = self.bar.add_task("train", total=event.total_steps, completed=event.step, loss="-", lr="-",
                                        rate="-")
        self.bar.start()

    def _step(self, event: ev.Step) -> None:
        rate = f"{event.throughput:.0f} {event.unit}/s"
        if self.bar is not None:
            self.bar.update(self.bar_id, completed=event.step, loss=f"{event.loss:.4f}",
                            lr=f"{event.learning_rate:.2e}", rate=rate)
            return
        norm = f"  grad_norm {event.grad_norm:.3f}" if event.grad_norm is not None else ""
        self.console.print(
            f"step {event.step}/{event.total_steps}  loss {event.loss:.4f}  lr {event.learning_rate:.2e}{norm}  "
            f"{rate}  eta {_duration(event.eta_s)}", highlight=False,
        )

    def _evaluation(self, event: ev.Evaluation) -> None:
        extra = "".join(f"  {name} {value:.4g}" for name, value in event.metrics.items())
        line = f"eval at step {event.step}: val_loss {event.val_loss:.4f}{extra}"
        self._print(line)

    def _skipped(self, event: ev.StepSkipped) -> None:
        self._print(f"[yellow]warning[/]: {event.message}")

    def _batch_reduced(self, event: ev.BatchSizeReduced) -> None:
        self._print(f"[yellow]batch size[/]: {event.reason}; step {event.step} on: micro-batches of "
                    f"{event.micro_batch}, up to {event.gradient_accumulation} per optimizer step")

    def _rate_chosen(self, event: ev.LearningRateChosen) -> None:
        self._print(f"[bold]learning rate[/]: {event.rate:g} ({event.reason})")

    def _print(self, line: str) -> None:
        (self.bar.console if self.bar is not None else self.console).print(line, highlight=False)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
