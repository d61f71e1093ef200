"""`run(config)`: the one entry point. The CLI, the Python API, the pipelines, sweeps and the server call it.

A config with `stages:` or `refine:` runs its pipeline (pipelines/), whose every stage or round is one single run.
A single run prepares its folder, subscribes the run's loggers and hands over to its model family's run (FAMILY_RUNS:
load, score the base, apply the method, train through the one loop, save, score the tuned model, report). Every
phase emits events (events.py).
"""

from __future__ import annotations

import importlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from rich.console import Console

from tunesmith import events as ev
from tunesmith.config.schema import RunConfig
from tunesmith.errors import TunesmithError
from tunesmith.methods import registry
from tunesmith.models.family import model_family
from tunesmith.provenance import write_provenance
from tunesmith.train.distributed import check_strategy, finish_strategy, is_main_process, reset_accelerate_state, strategy_kwargs
from tunesmith.train.loop import CancelToken, TrainingInterrupted
from tunesmith.train.metrics_log import MetricsLog
from tunesmith.train.precision import resolve_precision
from tunesmith.train.progress import TrainingProgress

INTERRUPTED = "interrupted.json"  # in a run folder stopped by a signal or a cancel token, until it finishes

# A family's run: train_and_score(config, method, accelerator, run_dir, resume, console, events, cancel,
# on_step_end) -> RunResult. Imported when used, so an LLM run never imports diffusers.
FAMILY_RUNS = {"llm": "tunesmith.tasks.causal_lm.run", "diffusion": "tunesmith.tasks.diffusion.run"}


@dataclass
class RunResult:
    run_dir: Path
    scores: dict
    output: Path  # the adapter/ or model/ folder (of the best round, or the last stage)
    val_loss: float | None = None  # final validation loss
    report: Path | None = None  # report.md, where one was written


def run(config: RunConfig, *, resume: bool = False, overwrite: bool = False, console: Console | None = None,
        on_event=None, cancel: CancelToken | None = None, on_step_end=None) -> RunResult:
    """Run what the config says; `on_event` receives every event (main process only), `cancel` stops the run after
    a checkpoint. Raises TunesmithError (one clear message) for user mistakes, TrainingInterrupted when stopped."""
    main = is_main_process()  # one voice: rank 0 prints and emits for every process
    console = console or Console()
    if not main:
        console = Console(quiet=True)
    events = ev.EventStream([on_event] if on_event and main else [])
    progress = TrainingProgress(console)
    events.subscribe(progress)
    try:
        if config.stages:
            from tunesmith.pipelines.stages import run_stages

            result = run_stages(config, resume=resume, overwrite=overwrite, console=console, events=events,
                                cancel=cancel)
        elif config.refine:
            from tunesmith.pipelines.refine import run_refine

            result = run_refine(config, resume=resume, overwrite=overwrite, console=console, events=events,
                                cancel=cancel)
        else:
            result = run_one(config, resume=resume, overwrite=overwrite, console=console, events=events,
                             cancel=cancel, on_step_end=on_step_end)
    except TrainingInterrupted:
        raise  # the loop has emitted run_interrupted
    except Exception as exc:
        message = str(exc) if isinstance(exc, TunesmithError) else f"{type(exc).__name__}: {exc}"
        events.emit(ev.RunFailed(message=message))
        raise
    finally:
        progress.close()
    events.emit(ev.RunFinished(run_dir=result.run_dir, output=result.output, scores=result.scores,
                               val_loss=result.val_loss))
    return result


def run_one(config: RunConfig, *, resume: bool, overwrite: bool, console: Console, events: ev.EventStream,
            cancel: CancelToken | None = None, on_step_end=None) -> RunResult:
    """One training run (a whole single-run config, or one stage or round of a pipeline)."""
    method = registry.of(config.method)
    registry.check_family(method, model_family(config.model), config.model)
    accelerator = make_accelerator(config)
    main = accelerator.is_main_process
    run_dir = Path(config.output_dir)
    if main:  # only rank 0 touches files; the others wait until the folder is ready
        _prepare_run_dir(run_dir, resume, overwrite, console)
        write_provenance(run_dir, config)
    accelerator.wait_for_everyone()
    subscribers = [MetricsLog(run_dir / "metrics.jsonl"), *_trackers(config, run_dir)] if main else []
    for subscriber in subscribers:
        events.subscribe(subscriber)
    marker = run_dir / INTERRUPTED
    try:
        family_run = importlib.import_module(FAMILY_RUNS[method.family])
        result = family_run.train_and_score(config, method, accelerator, run_dir, resume, console, events, cancel,
                                            on_step_end)
    except TrainingInterrupted as stopped:
        if main:  # the folder says why it holds no result: stopped on purpose, resumable
            marker.write_text(json.dumps({"step": stopped.step, "message": str(stopped)}) + "\n")
        raise
    finally:
        for subscriber in subscribers:
            events.unsubscribe(subscriber)
            getattr(subscriber, "close", lambda: None)()
    if main:
        marker.unlink(missing_ok=True)
    return result


def _trackers(config: RunConfig, run_dir: Path) -> list:
    if config.training.report_to == "tensorboard":
        from tunesmith.train.tensorboard_log import TensorBoardLog

        return [TensorBoardLog(run_dir / "tensorboard")]
    return []


def _prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool, console: Console) -> None:
    if resume:
        if not (run_dir / "config.yaml").is_file():
            console.print(f"--resume: {run_dir} holds no run yet (it was stopped before it began); starting over")
    elif (run_dir / "config.yaml").is_file():
        if not overwrite:
            raise TunesmithError(
                f"{run_dir} already holds a run; continue it with --resume, replace it with --overwrite, "
                "or choose another folder with --set output_dir=..."
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def make_accelerator(config: RunConfig) -> Accelerator:
    reset_accelerate_state()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_precision(config.training.precision, device)
    kwargs = {"cpu": device.type == "cpu", **strategy_kwargs(config)}
    accelerator = Accelerator(mixed_precision=precision, **kwargs)
    finish_strategy(accelerator, kwargs)
    check_strategy(config, accelerator)
    return accelerator


