"""The one training loop: every method and every model family trains through it.

It trains a *task* (train/task.py), which batches its examples and whose loss module turns a batch into a loss;
the loss module is what accelerate prepares, so DDP/FSDP/DeepSpeed wrap the whole computation. The loop owns
accumulation, clipping, scheduling, mixed precision, evaluation, checkpointing, resume, stop requests (signals or a
cancel token) and the training events, and the two knobs it can set itself: `batch_size: auto` (train/micro_batch.py)
and `learning_rate: auto` (train/lr_range.py).
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
from accelerate.utils.memory import clear_device_cache
from transformers import get_scheduler

from tunesmith import events as ev
from tunesmith.config.training import AUTO, TrainingConfig
from tunesmith.errors import ConfigError, TunesmithError
from tunesmith.methods.parameters import load_trainable_state, trainable_state
from tunesmith.train import deepspeed_zero, fsdp, lr_range
from tunesmith.train.batching import EpochBatchSampler
from tunesmith.train.checkpoint import (
    STRATEGY_NAMES, TrainState, latest_checkpoint, load_checkpoint, load_companion, load_trainable, rng_state,
    save_checkpoint, set_rng_state, staging_folder, start_staging, written_under,
)
from tunesmith.train.distributed import strategy_name
from tunesmith.train.evaluation import summed_loss, to_device
from tunesmith.train.micro_batch import (
    cut, describe_failure, is_out_of_memory, largest_micro_batch, out_of_memory_at_fixed_size, too_large_even_at_one,
)
from tunesmith.train.optimizer import make_optimizer
from tunesmith.train.task import Companion, Task

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
    learning_rate: float | None = None  # the rate trained with (under learning_rate: auto, the one chosen)


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
    memory_plan: str | None = None,
    companions: dict[str, Companion] | None = None,
) -> TrainResult:
    """`checkpoint_files`: text files (name -> content) written into every checkpoint, e.g. its config.yaml;
    `memory_plan`: the caller's memory estimate in words, quoted when a step runs out of memory; `companions`: what
    trains beside the weights (a weight average), by name, stepped and checkpointed with them (give them on the
    main process only: only it writes checkpoints)."""
    loop = _Loop(task, cfg, run_dir, accelerator, events or ev.EventStream(), cancel, checkpoint_files or {},
                 on_step_end, memory_plan, companions or {})
    return loop.run(resume)


def find_learning_rate(task: Task, cfg: TrainingConfig, run_dir: Path, accelerator: Accelerator, *,
                       events: ev.EventStream | None = None) -> lr_range.Choice:
    """The range test of `learning_rate: auto` alone (whatever cfg's rate): lr_range.json/png in run_dir, the
    LearningRateChosen event, and the task's model as it was."""
    loop = _Loop(task, cfg.model_copy(update={"learning_rate": AUTO}), run_dir, accelerator,
                 events or ev.EventStream(), None, {}, None, None, {})
    return loop.choose_rate(TrainState(), resume=False)


class _Loop:
    def __init__(self, task: Task, cfg, run_dir, accelerator, events, cancel, checkpoint_files, on_step_end,
                 memory_plan, companions):
        self.cfg, self.run_dir, self.acc, self.events = cfg, run_dir, accelerator, events
        self.cancel, self.checkpoint_files, self.on_step_end = cancel, checkpoint_files, on_step_end
        self.memory_plan, self.companions = memory_plan, companions
        self.spec = task  # the task's data side; self.task is its loss module, as accelerate prepared it
        # Tasks see an int batch_size: the examples per drawn batch (under auto the loop may cut each into pieces).
        self.sampler, self.collator = task.train_batches(cfg.model_copy(update={"batch_size": cfg.examples_per_batch}))
        self.eval_collator = task.eval_collator()
        self.total = total_steps(len(self.sampler), cfg)
        self.auto_batch, self.auto_rate = cfg.batch_size == AUTO, cfg.learning_rate == AUTO
        self.strategy = strategy_name(accelerator)
        self.deepspeed = self.strategy == "deepspeed"
        if self.auto_rate and self.deepspeed:
            raise ConfigError("training.learning_rate: auto cannot run its range test under distributed.strategy: "
                              "deepspeed (DeepSpeed keeps the optimizer's master weights itself); run it once without "
                              "DeepSpeed and set the rate it prints")
        # Under auto the optimizer starts at the centre of the range test; run() sets the chosen rate before the
        # schedule is made, so the schedule is the one an explicit rate would have given.
        self.learning_rate = self._centre() if self.auto_rate else cfg.learning_rate
        # The torch optimizer itself (prepare wraps it): the one whose rates the schedule sets, whatever the strategy.
        self.torch_optimizer = make_optimizer(cfg.optimizer, task.param_groups(cfg.weight_decay, self.learning_rate),
                                              self.learning_rate, self.strategy)
        self.task, self.optimizer = accelerator.prepare(task.loss_module(), self.torch_optimizer)
        self.scheduler = None  # made by _start_schedule once the rate is known
        # After prepare: FSDP replaces the parameters with sharded ones.
        self.params = [p for p in self.task.parameters() if p.requires_grad]
        # The module that reads and writes the trained tensors of a partitioned model (None: every rank has them).
        self.sharded = {"fsdp": fsdp, "deepspeed": deepspeed_zero}.get(self.strategy)
        if self.sharded:
            accelerator.print(self.sharded.sharding_summary(self.task, accelerator))
        self.stop_requested = False
        self.grad_norm = None
        self.bad_steps = 0  # steps dropped for a non-finite loss or gradient

    # -- main loop -------------------------------------------------------------------------------------
    def run(self, resume: bool) -> TrainResult:
        state = TrainState()
        self._start_schedule(self.choose_rate(state, resume).rate if self.auto_rate else self.learning_rate)
        if resume:
            state = self._restore(state)
        self.events.emit(ev.TrainingStarted(total_steps=self.total, step=state.step, unit=self.spec.unit,
                                            resumed=resume))
        if resume and state.micro_batches > 1:
            self._say_cut(state, state.step + 1, "resumed as cut before: an earlier step ran out of memory")
        val_loss = None
        with _stop_signals(self):
            meter = _Meter(self._zero())
            tick = time.perf_counter()
            for group in self._windows(state):
                loss, n_units, n_seen = self._optimizer_step(group, state)
                seconds = time.perf_counter() - tick  # collation + step; evaluation and saving excluded
                if loss is None:
                    self._skip_bad_step(state.step + 1)
                else:
                    meter.add(loss, n_units, n_seen, seconds)
                    for companion in self.companions.values():
                        companion.after_step(state.step + 1)
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
        return TrainResult(state, val_loss, trainable, self.learning_rate)

    def _start_schedule(self, rate: float) -> None:
        """Train at `rate`: every group at the rate the task gives it for `rate`, then the schedule from there."""
        if self.auto_rate:
            self._set_rates(rate)
        self.learning_rate = rate
        warmup = self.cfg.warmup_steps or math.ceil(self.cfg.warmup_ratio * self.total)
        # The scheduler stays unprepared: accelerate would step it once per process, but our global batch is
        # split across processes, so one optimizer step is one scheduler step whatever the world size.
        self.scheduler = get_scheduler(SCHEDULERS[self.cfg.lr_scheduler], self.torch_optimizer, warmup, self.total)

    def _set_rates(self, rate: float) -> None:
        """Each optimizer group at the rate the task gives it for `rate` (a group may have its own, e.g. a text
        encoder's), exactly as an optimizer made with `rate` would have them."""
        wanted = [group.get("lr", rate) for group in self.spec.param_groups(self.cfg.weight_decay, rate)]
        for group, lr in zip(self.torch_optimizer.param_groups, wanted):
            group["lr"] = lr

    def _centre(self) -> float:
        return self.cfg.method_learning_rate or lr_range.UNKNOWN_CENTRE

    # -- learning_rate: auto -------------------------------------------------------------------------------
    def choose_rate(self, state: TrainState, resume: bool) -> lr_range.Choice:
        """The range test's choice, or on resume the one this run made before (saved in the run folder)."""
        choice = lr_range.saved(self.run_dir) if resume else None
        reused = choice is not None
        if choice is None:
            choice = self._range_test(state)
            if self.acc.is_main_process:
                lr_range.save(self.run_dir, choice)
        reason = f"as chosen before, in {lr_range.FILE}: {choice.reason}" if reused else choice.reason
        self.events.emit(ev.LearningRateChosen(rate=choice.rate, reason=reason, tried=0 if reused else choice.tried,
                                               low=choice.low, high=choice.high, fallback=choice.fallback,
                                               reused=reused))
        return choice

    def _range_test(self, state: TrainState) -> lr_range.Choice:
        """One optimizer step at each rate, on the training batches in order (as many per step as training takes);
        everything it changes is put back."""
        batches = self._drawn_batches()

        def step(rate: float) -> float:
            self._set_rates(rate)
            window = [next(batches) for _ in range(self.cfg.gradient_accumulation)]
            total, _, _ = self._accumulate(window, state, step=0)
            norm = self._clip()
            if self._finite(total, norm):
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            return float(self.acc.reduce(total, "sum") if self.acc.num_processes > 1 else total)

        centre = self._centre()
        with lr_range.Restored(self.params + list(self.task.buffers()), self.acc.scaler):
            tried, losses = lr_range.sweep(step, centre)
            self.optimizer.state.clear()  # Adam's moments: training starts with a fresh optimizer
        return lr_range.choose(tried, losses, centre, self.cfg.method_learning_rate)

    def _drawn_batches(self):
        """The training batches in order, epoch after epoch (the range test may want more than one epoch has)."""
        epoch = 0
        while True:
            self.sampler.set_epoch(epoch)
            yield from list(self.sampler)
            epoch += 1

    def _windows(self, state: TrainState):
        """Yield the drawn batches (index lists) of each optimizer step, from the saved position onwards."""
        ga = self.cfg.gradient_accumulation
        while state.step < self.total:
            self.sampler.set_epoch(state.epoch)
            batches = list(self.sampler)
            start = state.batches_in_epoch
            for first in range(start, len(batches), ga):
                group = batches[first : first + ga]
                state.batches_in_epoch = first + len(group)
                yield group
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

    def _optimizer_step(self, group: list[list[int]], state: TrainState) -> tuple[torch.Tensor, int, int]:
        """One optimizer step over a window of drawn batches; returns (summed loss on device, loss units,
        throughput units), the loss None when the step was dropped as non-finite."""
        total, n_units, n_seen = self._accumulate(group, state, step=state.step + 1)
        norm = self._clip()
        # DeepSpeed has stepped already (and handles fp16 overflow itself); elsewhere a non-finite step is dropped.
        applied = self.deepspeed or self._finite(total, norm)
        if applied:
            self.grad_norm = norm if norm is not None else self.grad_norm
            self.optimizer.step()  # a no-op under DeepSpeed (stepped above)
        self.scheduler.step()  # the schedule follows the step count, applied or not
        self.optimizer.zero_grad(set_to_none=True)
        return (total * n_units if applied else None), n_units, n_seen

    def _accumulate(self, group: list[list[int]], state: TrainState, step: int) -> tuple[torch.Tensor, int, int]:
        """Forward and backward over the window's micro-batches (each drawn batch cut into state.micro_batches);
        on an out-of-memory error, under batch_size: auto, cut them smaller and do the window again."""
        # A retry starts from the random state of the first attempt: it is the step a run cut this way from the
        # start would have taken (resuming from a checkpoint gives the same).
        rng = rng_state() if self.auto_batch else None
        tried = []
        while True:
            pieces = state.micro_batches
            tried.append((largest_micro_batch(group, pieces), self.cfg.gradient_accumulation * pieces))
            window = [self._shard(piece, self.spec.train_set, self.collator)
                      for indices in group for piece in cut(indices, pieces)]
            try:
                return self._forward_backward(window)
            except Exception as error:  # noqa: BLE001 -- only out-of-memory errors are handled, the rest re-raised
                if not is_out_of_memory(error):
                    raise
                failure = describe_failure(error)
            # Out of the except block the traceback, and the activations its frames held, are gone.
            window = None
            self.optimizer.zero_grad(set_to_none=True)
            clear_device_cache(garbage_collection=True)
            micro = tried[-1][0]
            if not self.auto_batch or self.acc.num_processes > 1:
                raise out_of_memory_at_fixed_size(step, micro, failure, self.acc.device, self.memory_plan,
                                                  self.acc.num_processes)
            if micro == 1:
                raise too_large_even_at_one(step, tried, failure, self.acc.device, self.memory_plan,
                                            self.spec.memory_advice)
            state.micro_batches = pieces * 2
            where = f"step {step}" if step else "the learning-rate range test"
            self._say_cut(state, step, f"{where} ran out of memory with micro-batches of {micro}", group)
            set_rng_state(rng)

    def _say_cut(self, state: TrainState, step: int, reason: str, group: list[list[int]] | None = None) -> None:
        micro = largest_micro_batch(group or [[0] * self.cfg.examples_per_batch], state.micro_batches)
        self.events.emit(ev.BatchSizeReduced(step=step, micro_batch=micro, reason=reason,
                                             gradient_accumulation=self.cfg.gradient_accumulation * state.micro_batches))

    def _forward_backward(self, window: list[tuple[object, int, int]]) -> tuple[torch.Tensor, int, int]:
        """Forward and backward over CPU batches; returns (summed loss on device, loss units, throughput units).

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
        return total, n_units, n_seen

    def _clip(self) -> torch.Tensor | None:
        if not self.cfg.max_grad_norm:
            return None
        # Under DeepSpeed this returns the norm its step just clipped with.
        norm = self.acc.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # FSDP: on every rank

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
        micro_batch = -(-self.cfg.examples_per_batch // state.micro_batches)  # what training fits in memory
        sampler = EpochBatchSampler(len(self.spec.val_set), micro_batch, seed=0, shuffle=False)
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
                f"them applied; lower training.learning_rate (now {self.learning_rate:g}), set "
                "training.max_grad_norm, or check the data; the last checkpoint holds the weights before them"
            )

    def _log_train(self, state: TrainState, meter: "_Meter") -> None:
        if meter.units == 0:  # every step since the last line was dropped (each said so): no loss to report
            return
        # Each rank holds the loss sum of its own shard; the counts are already global.
        loss = (self.acc.reduce(meter.loss, "sum") / max(meter.units, 1)).item()
        if not math.isfinite(loss):
            raise TunesmithError(
                f"training loss became {loss} at step {state.step}; lower training.learning_rate "
                f"(now {self.learning_rate:g}) or set training.max_grad_norm"
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
                                     extra_files=self.checkpoint_files,
                                     companions={name: c.state_dict() for name, c in self.companions.items()})
            self.events.emit(ev.CheckpointSaved(step=state.step, path=folder))
        self.acc.wait_for_everyone()

    def _restore(self, fresh: TrainState) -> TrainState:
        folder = latest_checkpoint(self.run_dir, self.acc.print)
        if folder is None:  # killed before its first checkpoint: nothing is lost by starting again
            self.acc.print(f"--resume: no complete checkpoint in {self.run_dir / 'checkpoints'} yet; "
                           "starting over from step 0")
            return fresh
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
        for name, companion in self.companions.items():
            saved = load_companion(folder, name)
            if saved is None:  # written before the companion was on (or by an older tunesmith)
                self.acc.print(f"--resume: {folder} holds no {name} state; it starts again from the resumed weights")
            else:
                companion.load_state_dict(saved, folder)
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
