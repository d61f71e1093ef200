"""The one training loop: every method and every model family trains through it.

It trains a *task* (train/task.py), which batches its examples and whose loss module turns a batch into a loss;
the loss module is what accelerate prepares, so DDP/FSDP/DeepSpeed wrap the whole computation. The loop owns
accumulation, clipping, scheduling, mixed precision, evaluation, checkpointing, resume, stop requests (signals or a
cancel token) and the training events.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from accelerate import Accelerator
from transformers import get_scheduler

from tunesmith import events as ev
from tunesmith.config.training import TrainingConfig
from tunesmith.errors import ConfigError, TunesmithError
from tunesmith.methods.parameters import load_trainable_state, trainable_state
from tunesmith.train import deepspeed_zero, fsdp
from tunesmith.train.batching import EpochBatchSampler
from tunesmith.train.checkpoint import (
    STRATEGY_NAMES, TrainState, latest_checkpoint, load_checkpoint, load_trainable, save_checkpoint,
    staging_folder, start_staging, written_under,
)
from tunesmith.train.distributed import strategy_name
from tunesmith.train.evaluation import summed_loss, to_device
from tunesmith.train.task import Task

SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


class TrainingInterrupted(TunesmithError):
    """Raised after a stop request (SIGTERM/SIGINT or a cancel token) once the current step is checkpointed;
    resuming continues from there."""

    def __init__(self, message: str, step: int = 0):
        super().__init__(message)
        self.step = step


class CancelToken:
    """Ask a running fine-tune to stop from another thread: it finishes the step, checkpoints and stops."""

    def __init__(self):
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class TrainResult:
    state: TrainState
    val_loss: float | None
    trainable: dict | None = None  # FSDP/DeepSpeed only: the trained tensors, gathered whole on the main process


def total_steps(micro_batches_per_epoch: int, cfg: TrainingConfig) -> int:
    if cfg.max_steps:
        return cfg.max_steps
    return max(1, math.ceil(cfg.epochs * -(-micro_batches_per_epoch // cfg.gradient_accumulation)))


def train(
    task: Task,
    cfg: TrainingConfig,
    run_dir: Path,
    accelerator: Accelerator,
    *,
    events: ev.EventStream | None = None,
    resume: bool = False,
    cancel: CancelToken | None = None,
    checkpoint_files: dict[str, str] | None = None,
    on_step_end: Callable[[TrainState], None] | None = None,
) -> TrainResult:
    """`checkpoint_files`: text files (name -> content) written into every checkpoint, e.g. its config.yaml."""
    loop = _Loop(task, cfg, run_dir, accelerator, events or ev.EventStream(), cancel, checkpoint_files or {},
                 on_step_end)
    return loop.run(resume)


class _Loop:
    def __init__(self, task: Task, cfg, run_dir, accelerator, events, cancel, checkpoint_files, on_step_end):
        self.cfg, self.run_dir, self.acc, self.events = cfg, run_dir, accelerator, events
        self.cancel, self.checkpoint_files, self.on_step_end = cancel, checkpoint_files, on_step_end
        self.spec = task  # the task's data side; self.task is its loss module, as accelerate prepared it
        self.sampler, self.collator = task.train_batches(cfg)
        self.eval_collator = task.eval_collator()
        self.total = total_steps(len(self.sampler), cfg)
        optimizer = torch.optim.AdamW(task.param_groups(cfg.weight_decay, cfg.learning_rate), lr=cfg.learning_rate)
        warmup = cfg.warmup_steps or math.ceil(cfg.warmup_ratio * self.total)
        scheduler = get_scheduler(SCHEDULERS[cfg.lr_scheduler], optimizer, warmup, self.total)
        # The scheduler stays unprepared: accelerate would step it once per process, but our global batch is
        # split across processes, so one optimizer step is one scheduler step whatever the world size.
        self.task, self.optimizer = accelerator.prepare(task.loss_module(), optimizer)
        self.scheduler = scheduler
        # After prepare: FSDP replaces the parameters with sharded ones.
        self.params = [p for p in self.task.parameters() if p.requires_grad]
        self.strategy = strategy_name(accelerator)
        self.deepspeed = self.strategy == "deepspeed"
        # The module that reads and writes the trained tensors of a partitioned model (None: every rank has them).
        self.sharded = {"fsdp": fsdp, "deepspeed": deepspeed_zero}.get(self.strategy)
        if self.sharded:
            accelerator.print(self.sharded.sharding_summary(self.task, accelerator))
        self.stop_requested = False
        self.grad_norm = None
        self.bad_steps = 0  # steps dropped for a non-finite loss or gradient

    # -- main loop -------------------------------------------------------------------------------------
    def run(self, resume: bool) -> TrainResult:
        state = self._restore() if resume else TrainState()
        self.events.emit(ev.TrainingStarted(total_steps=self.total, step=state.step, unit=self.spec.unit,
                                            resumed=resume))
        val_loss = None
        with _stop_signals(self):
            meter = _Meter(self._zero())
            tick = time.perf_counter()
            for window in self._windows(state):
                loss, n_units, n_seen = self._optimizer_step(window)
                seconds = time.perf_counter() - tick  # collation + step; evaluation and saving excluded
                if loss is None:
                    self._skip_bad_step(state.step + 1)
                else:
                    meter.add(loss, n_units, n_seen, seconds)
                state.step += 1
                state.seen += n_seen
                state.elapsed += seconds
                if state.step % self.cfg.log_every == 0 or state.step == self.total:
                    self._log_train(state, meter)
                    meter = _Meter(self._zero())
                if state.step % self.cfg.eval_every == 0 and state.step < self.total:
                    self.evaluate(state)
                stop = self._should_stop()  # agreed by every rank, so all of them join the save below
                if state.step % self.cfg.save_every == 0 or stop:
                    self._save(state)
                if self.on_step_end:
                    self.on_step_end(state)
                if stop:
                    message = f"stopped at step {state.step}; checkpoint saved. Continue with: tunesmith train CONFIG --resume"
                    self.events.emit(ev.RunInterrupted(step=state.step, message=message))
                    raise TrainingInterrupted(message, state.step)
                tick = time.perf_counter()
            if self.spec.val_set:
                val_loss = self.evaluate(state)
        trainable = self.sharded.full_trainable_state(self.task) if self.sharded else None  # collective
        return TrainResult(state, val_loss, trainable)

    def _windows(self, state: TrainState):
        """Yield lists of micro-batches, one list per optimizer step, from the saved position onwards."""
        ga = self.cfg.gradient_accumulation
        while state.step < self.total:
            self.sampler.set_epoch(state.epoch)
            batches = list(self.sampler)
            start = state.batches_in_epoch
            for first in range(start, len(batches), ga):
                group = batches[first : first + ga]
                state.batches_in_epoch = first + len(group)
                yield [self._shard(indices, self.spec.train_set, self.collator) for indices in group]
                if state.step >= self.total:
                    return
            state.epoch += 1
            state.batches_in_epoch = 0

    def _shard(self, indices: list[int], examples, collator) -> tuple[object, int, int]:
        """This rank's share of a global batch, as a CPU batch, with its loss units and throughput units.

        A batch smaller than the world size leaves some ranks without examples; they still run a forward and
        backward (every rank must join each gradient all-reduce) on a blank copy of the first example, which adds
        nothing to the loss or the gradient.
        """
        mine = indices[self.acc.process_index :: self.acc.num_processes]
        batch = collator([examples[i] for i in (mine or indices[:1])])
        if not mine:
            return self.spec.blank(batch), 0, 0
        counts = self.spec.counts(batch)
        return batch, counts.loss_units, counts.throughput

    def _zero(self) -> torch.Tensor:
        return torch.zeros((), device=self.acc.device)

    def _optimizer_step(self, window: list[tuple[object, int, int]]) -> tuple[torch.Tensor, int, int]:
        """One optimizer step over CPU batches; returns (summed loss on device, loss units, throughput units).

        Counts come from the CPU batches, so the step itself never waits on the device.
        """
        # Normalise by the loss units of the whole window (all ranks), so accumulation and data parallelism give
        # the exact mean gradient of one big batch.
        counts = torch.tensor([sum(units for _, units, _ in window), sum(seen for _, _, seen in window)])
        if self.acc.num_processes > 1:
            counts = self.acc.reduce(counts.to(self.acc.device), "sum").cpu()
        n_units, n_seen = int(counts[0]), int(counts[1])
        scale = self.acc.num_processes  # DDP, FSDP and ZeRO average gradients over ranks; undo it: exact mean
        total = torch.zeros((), device=self.acc.device)
        for i, (batch, _, _) in enumerate(window):
            batch = to_device(batch, self.acc.device)
            sync = i == len(window) - 1
            with (nullcontext() if sync else self.acc.no_sync(self.task)), self.acc.autocast():
                loss = self.task(batch, max(n_units, 1)) * scale
            # DeepSpeed reduces, clips and steps inside the last backward of the window.
            with deepspeed_zero.micro_batch(self.acc, last=sync) if self.deepspeed else nullcontext():
                self.acc.backward(loss)
            total += loss.detach() / scale
        norm = None
        if self.cfg.max_grad_norm:
            # Under DeepSpeed this returns the norm its step just clipped with.
            norm = self.acc.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
            norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # FSDP: on every rank
        # DeepSpeed has stepped already (and handles fp16 overflow itself); elsewhere a non-finite step is dropped.
        applied = self.deepspeed or self._finite(total, norm)
        if applied:
            self.grad_norm = norm if norm is not None else self.grad_norm
            self.optimizer.step()  # a no-op under DeepSpeed (stepped above)
        self.scheduler.step()  # the schedule follows the step count, applied or not
        self.optimizer.zero_grad(set_to_none=True)
        return (total * n_units if applied else None), n_units, n_seen

    def _finite(self, loss: torch.Tensor, norm: torch.Tensor | None) -> bool:
        """Whether the window's loss (and gradient norm) are finite on every rank (one host sync per step)."""
        bad = (~torch.isfinite(loss)).float() + (0.0 if norm is None else (~torch.isfinite(norm.float())).float())
        if self.acc.num_processes > 1:
            bad = self.acc.reduce(bad, "sum")
        return not bool(bad.item())

    # -- evaluation, logging, checkpoints -------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, state: TrainState) -> float:
        self.task.eval()
        sampler = EpochBatchSampler(len(self.spec.val_set), self.cfg.batch_size, seed=0, shuffle=False)
        shards = (self._shard(indices, self.spec.val_set, self.eval_collator)[:2] for indices in sampler)
        loss_sum, units = summed_loss(self.task, shards, self.acc.device, self.acc.autocast)
        self.task.train()
        loss_sum = self.acc.reduce(loss_sum, "sum")
        units = int(self.acc.reduce(torch.tensor(units, device=self.acc.device), "sum").item())
        val_loss = (loss_sum / max(units, 1)).item()
        self.events.emit(ev.Evaluation(step=state.step, val_loss=val_loss,
                                       metrics=self.spec.validation_metrics(val_loss)))
        return val_loss

    def _skip_bad_step(self, step: int) -> None:
        self.bad_steps += 1
        message = (f"step {step}: the loss or a gradient is not finite (nan/inf); the step was not applied "
                   f"({self.bad_steps} of at most {self.cfg.max_bad_steps})")
        self.events.emit(ev.StepSkipped(step=step, bad_steps=self.bad_steps, message=message))
        if self.bad_steps >= self.cfg.max_bad_steps:
            raise TunesmithError(
                f"training stopped at step {step}: {self.bad_steps} steps had a non-finite loss or gradient, none of "
                f"them applied; lower training.learning_rate (now {self.cfg.learning_rate}), set "
                "training.max_grad_norm, or check the data; the last checkpoint holds the weights before them"
            )

    def _log_train(self, state: TrainState, meter: "_Meter") -> None:
        # Each rank holds the loss sum of its own shard; the counts are already global.
        loss = (self.acc.reduce(meter.loss, "sum") / max(meter.units, 1)).item()
        if not math.isfinite(loss):
            raise TunesmithError(
                f"training loss became {loss} at step {state.step}; lower training.learning_rate "
                f"(now {self.cfg.learning_rate}) or set training.max_grad_norm"
            )
        per_step = state.elapsed / max(state.step, 1)
        self.events.emit(ev.Step(
            step=state.step, total_steps=self.total, epoch=state.epoch, loss=loss,
            learning_rate=self.scheduler.get_last_lr()[0],
            grad_norm=float(self.grad_norm) if self.grad_norm is not None else None,
            throughput=meter.seen / max(meter.seconds, 1e-9), unit=self.spec.unit, seen=state.seen,
            elapsed_s=state.elapsed, eta_s=per_step * (self.total - state.step),
        ))

    def _save(self, state: TrainState) -> None:
        self.acc.wait_for_everyone()
        main = self.acc.is_main_process
        if self.deepspeed:  # every rank writes its optimizer partition into the staging folder first
            if main:
                start_staging(self.run_dir, state.step)
            self.acc.wait_for_everyone()
            deepspeed_zero.save_engine_state(self.task, staging_folder(self.run_dir, state.step))
            trainable, optimizer_state = deepspeed_zero.full_trainable_state(self.task), None
        elif self.strategy == "fsdp":  # gathering the shards is a collective: every rank takes part, rank 0 receives
            trainable = fsdp.full_trainable_state(self.task)
            optimizer_state = fsdp.full_optimizer_state(self.task, self.optimizer.optimizer)
        elif main:
            trainable, optimizer_state = trainable_state(self._model()), self.optimizer.state_dict()
        if main:
            folder = save_checkpoint(self.run_dir, trainable, optimizer_state, self.scheduler, state,
                                     self.cfg.keep_checkpoints, staged=self.deepspeed,
                                     extra_files=self.checkpoint_files)
            self.events.emit(ev.CheckpointSaved(step=state.step, path=folder))
        self.acc.wait_for_everyone()

    def _restore(self) -> TrainState:
        folder = latest_checkpoint(self.run_dir, self.acc.print)
        if folder is None:  # killed before its first checkpoint: nothing is lost by starting again
            self.acc.print(f"--resume: no complete checkpoint in {self.run_dir / 'checkpoints'} yet; "
                           "starting over from step 0")
            return TrainState()
        optimizer_state, state = load_checkpoint(folder, self.scheduler)
        written = written_under(optimizer_state)
        if written != self.strategy:
            raise ConfigError(f"--resume: {folder} was written under {STRATEGY_NAMES[written]}; resume it with the "
                              f"same (this run uses {STRATEGY_NAMES[self.strategy]})")
        if self.deepspeed:  # each rank reads its own partition of the weights and optimizer state
            deepspeed_zero.load_engine_state(self.task, folder, self.acc.num_processes)
        elif self.strategy == "fsdp":  # every rank reads the whole checkpoint and keeps its own shard of it
            fsdp.load_full_state(self.task, self.optimizer.optimizer, load_trainable(folder), optimizer_state)
        else:
            load_trainable_state(self._model(), load_trainable(folder))
            self.optimizer.load_state_dict(optimizer_state)
        return state

    def _model(self):
        return self.acc.unwrap_model(self.task).model

    def _should_stop(self) -> bool:
        requested = self.stop_requested or (self.cancel is not None and self.cancel.cancelled)
        # Every rank must agree, or one rank would wait forever in the next collective.
        flag = torch.tensor(float(requested), device=self.acc.device)
        return bool(self.acc.reduce(flag, "sum").item() > 0) if self.acc.num_processes > 1 else requested


@dataclass
class _Meter:
    """What happened since the last log line: summed loss (on device), loss and throughput units, step seconds."""

    loss: torch.Tensor
    units: int = 0
    seen: int = 0
    seconds: float = 0.0

    def add(self, loss: torch.Tensor, units: int, seen: int, seconds: float) -> None:
        self.loss += loss
        self.units += units
        self.seen += seen
        self.seconds += seconds


class _stop_signals:
    """On SIGTERM/SIGINT finish the current step, checkpoint, then stop (a second signal kills as usual)."""

    def __init__(self, loop: _Loop):
        self.loop = loop

    def __enter__(self):
        self.previous = {}
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread (e.g. a worker thread): no handlers
            self.previous = {}
        return self

    def _handle(self, signum, frame):
        self.loop.stop_requested = True
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
