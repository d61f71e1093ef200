"""The one training loop: every method trains through it (LLM today; diffusion tasks plug in the same way).

A *task* is an nn.Module whose forward turns a batch into a loss; wrapping the loss in the module means
data-parallel wrappers (DDP/FSDP/DeepSpeed via accelerate) see the whole computation. The loop owns accumulation,
clipping, scheduling, mixed precision, evaluation, checkpointing, resume and guards.
"""

from __future__ import annotations

import math
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from accelerate import Accelerator
from torch import nn
from transformers import get_scheduler

from tunesmith.config.schema import TrainingConfig
from tunesmith.data.collate import PaddingCollator
from tunesmith.data.packing import PackingCollator, TokenBudgetBatchSampler
from tunesmith.errors import ConfigError, TunesmithError
from tunesmith.methods.llm import load_trainable_state, trainable_state
from tunesmith.train import deepspeed_zero, fsdp
from tunesmith.train.batching import EpochBatchSampler
from tunesmith.train.distributed import strategy_name
from tunesmith.train.checkpoint import (
    STRATEGY_NAMES, TrainState, complete_checkpoints, load_checkpoint, load_trainable, save_checkpoint,
    staging_folder, start_staging, written_under,
)
from tunesmith.train.loss import IGNORE_INDEX, causal_lm_loss, count_label_tokens
from tunesmith.train.metrics_log import MetricsLog
from tunesmith.train.progress import training_progress

SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


class TrainingInterrupted(TunesmithError):
    """Raised after SIGTERM/SIGINT once the current step is checkpointed; --resume continues from there."""


class CausalLMTask(nn.Module):
    """Batch -> token-mean cross-entropy over trained tokens (normalised by the caller's token count)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        # accelerate's FSDP wraps the classes named here, one shard unit per transformer block (works through PEFT).
        self._no_split_modules = getattr(model, "_no_split_modules", None)

    def forward(self, batch: dict, num_label_tokens: int) -> torch.Tensor:
        return causal_lm_loss(self.model, batch, num_label_tokens)


@dataclass
class TrainResult:
    state: TrainState
    val_loss: float | None
    trainable: dict | None = None  # FSDP/DeepSpeed only: the trained tensors, gathered whole on the main process


def total_steps(micro_batches_per_epoch: int, cfg: TrainingConfig) -> int:
    if cfg.max_steps:
        return cfg.max_steps
    return max(1, math.ceil(cfg.epochs * -(-micro_batches_per_epoch // cfg.gradient_accumulation)))


def batch_plan(train_set: list[dict], cfg: TrainingConfig, pad_token_id: int):
    """(batch sampler, collator) for training: padded batches of batch_size, or packed token budgets."""
    lengths = [len(example["input_ids"]) for example in train_set]
    if not cfg.packing:
        sampler = EpochBatchSampler(len(train_set), cfg.batch_size, cfg.seed,
                                    lengths=lengths if cfg.group_by_length else None)
        return sampler, PaddingCollator(pad_token_id)
    return TokenBudgetBatchSampler(lengths, _packing_budget(lengths, cfg), cfg.seed), PackingCollator(pad_token_id)


def largest_micro_batch_tokens(train_set: list[dict], cfg: TrainingConfig) -> int:
    """Token positions (padding included) of the largest micro-batch training can draw."""
    lengths = [len(example["input_ids"]) for example in train_set]
    if cfg.packing:
        return max(max(lengths), _packing_budget(lengths, cfg))
    return min(cfg.batch_size, len(lengths)) * max(lengths)


def _packing_budget(lengths: list[int], cfg: TrainingConfig) -> int:
    # By default a packed micro-batch holds as many tokens as an average padded batch holds real tokens,
    # so an epoch has about as many optimizer steps as without packing and the same hyperparameters work.
    return cfg.batch_tokens or max(max(lengths), round(cfg.batch_size * sum(lengths) / len(lengths)))


def train(
    model: nn.Module,
    train_set: list[dict],
    val_set: list[dict],
    pad_token_id: int,
    cfg: TrainingConfig,
    run_dir: Path,
    accelerator: Accelerator,
    *,
    resume: bool = False,
    on_step_end: Callable[[TrainState], None] | None = None,
) -> TrainResult:
    loop = _Loop(model, train_set, val_set, pad_token_id, cfg, run_dir, accelerator, on_step_end)
    return loop.run(resume)


class _Loop:
    def __init__(self, model, train_set, val_set, pad_token_id, cfg, run_dir, accelerator, on_step_end):
        self.cfg, self.run_dir, self.acc, self.on_step_end = cfg, run_dir, accelerator, on_step_end
        self.train_set, self.val_set = train_set, val_set
        self.sampler, self.collator = batch_plan(train_set, cfg, pad_token_id)
        self.eval_collator = PaddingCollator(pad_token_id)
        self.total = total_steps(len(self.sampler), cfg)
        optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.learning_rate)
        warmup = cfg.warmup_steps or math.ceil(cfg.warmup_ratio * self.total)
        scheduler = get_scheduler(SCHEDULERS[cfg.lr_scheduler], optimizer, warmup, self.total)
        # The scheduler stays unprepared: accelerate would step it once per process, but our global batch is
        # split across processes, so one optimizer step is one scheduler step whatever the world size.
        self.task, self.optimizer = accelerator.prepare(CausalLMTask(model), optimizer)
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

    # -- main loop -------------------------------------------------------------------------------------
    def run(self, resume: bool) -> TrainResult:
        state = self._restore() if resume else TrainState()
        log = MetricsLog(self.run_dir / "metrics.jsonl", resume_step=state.step if resume else None)
        self.log = log if self.acc.is_main_process else None
        val_loss = None
        with _stop_signals(self), training_progress(self.acc.is_main_process) as progress:
            bar = progress.add_task("train", total=self.total, completed=state.step, loss="-", lr="-", tps="-")
            meter = _Meter(self._zero())
            tick = time.perf_counter()
            for window in self._windows(state):
                loss, n_tokens, n_inputs = self._optimizer_step(window)
                seconds = time.perf_counter() - tick  # collation + step; evaluation and saving excluded
                meter.add(loss, n_tokens, n_inputs, seconds)
                state.step += 1
                state.tokens_seen += n_inputs
                state.elapsed += seconds
                if state.step % self.cfg.log_every == 0 or state.step == self.total:
                    self._log_train(state, meter, progress, bar)
                    meter = _Meter(self._zero())
                progress.update(bar, completed=state.step)
                if state.step % self.cfg.eval_every == 0 and state.step < self.total:
                    self.evaluate(state)
                stop = self._should_stop()  # agreed by every rank, so all of them join the save below
                if state.step % self.cfg.save_every == 0 or stop:
                    self._save(state)
                if self.on_step_end:
                    self.on_step_end(state)
                if stop:
                    raise TrainingInterrupted(
                        f"stopped at step {state.step}; checkpoint saved. Continue with: tunesmith train CONFIG --resume"
                    )
                tick = time.perf_counter()
            if self.val_set:
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
                yield [self._shard(indices, self.train_set, self.collator) for indices in group]
                if state.step >= self.total:
                    return
            state.epoch += 1
            state.batches_in_epoch = 0

    def _shard(self, indices: list[int], examples: list[dict], collator) -> tuple[dict, int]:
        """This rank's share of a global batch, as a CPU batch, and its count of real input tokens.

        A batch smaller than the world size leaves some ranks without examples; they still run a forward and
        backward (every rank must join each gradient all-reduce) on a copy of the first example with no labels,
        which adds nothing to the loss or the gradient.
        """
        mine = indices[self.acc.process_index :: self.acc.num_processes]
        batch = collator([examples[i] for i in (mine or indices[:1])])
        if not mine:
            batch["labels"].fill_(IGNORE_INDEX)
            return batch, 0
        return batch, real_tokens(batch)

    def _zero(self) -> torch.Tensor:
        return torch.zeros((), device=self.acc.device)

    def _optimizer_step(self, window: list[tuple[dict, int]]) -> tuple[torch.Tensor, int, int]:
        """One optimizer step over CPU batches; returns (summed token loss on device, trained tokens, input tokens).

        Token counts come from the CPU batches, so the step itself never waits on the device.
        """
        # Normalise by the trained tokens of the whole window (all ranks), so accumulation and data
        # parallelism give the exact token-mean gradient of one big batch.
        counts = torch.tensor([sum(count_label_tokens(b["labels"]) for b, _ in window), sum(n for _, n in window)])
        if self.acc.num_processes > 1:
            counts = self.acc.reduce(counts.to(self.acc.device), "sum").cpu()
        n_tokens, n_inputs = int(counts[0]), int(counts[1])
        scale = self.acc.num_processes  # DDP, FSDP and ZeRO average gradients over ranks; undo it: token-mean
        total = torch.zeros((), device=self.acc.device)
        for i, (batch, _) in enumerate(window):
            batch = {k: v.to(self.acc.device, non_blocking=True) for k, v in batch.items()}
            sync = i == len(window) - 1
            with (nullcontext() if sync else self.acc.no_sync(self.task)), self.acc.autocast():
                loss = self.task(batch, max(n_tokens, 1)) * scale
            # DeepSpeed reduces, clips and steps inside the last backward of the window.
            with deepspeed_zero.micro_batch(self.acc, last=sync) if self.deepspeed else nullcontext():
                self.acc.backward(loss)
            total += loss.detach() / scale
        if self.cfg.max_grad_norm:
            # Under DeepSpeed this returns the norm its step just clipped with.
            norm = self.acc.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
            self.grad_norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # FSDP: on every rank
        self.optimizer.step()  # a no-op under DeepSpeed (stepped above)
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total * n_tokens, n_tokens, n_inputs

    # -- evaluation, logging, checkpoints -------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, state: TrainState) -> float:
        self.task.eval()
        loss_sum = torch.zeros((), device=self.acc.device)
        tokens = 0
        sampler = EpochBatchSampler(len(self.val_set), self.cfg.batch_size, seed=0, shuffle=False)
        for indices in sampler:
            batch, _ = self._shard(indices, self.val_set, self.eval_collator)
            batch = {k: v.to(self.acc.device) for k, v in batch.items()}
            with self.acc.autocast():
                loss_sum += self.task(batch, 1).float()
            tokens += count_label_tokens(batch["labels"])
        self.task.train()
        loss_sum = self.acc.reduce(loss_sum, "sum")
        tokens = int(self.acc.reduce(torch.tensor(tokens, device=self.acc.device), "sum").item())
        val_loss = (loss_sum / max(tokens, 1)).item()
        if self.log:
            self.log.write(type="eval", step=state.step, val_loss=val_loss, val_perplexity=_ppl(val_loss))
        return val_loss

    def _log_train(self, state: TrainState, meter: "_Meter", progress, bar) -> None:
        # Each rank holds the loss sum of its own shard; the token counts are already global.
        loss = (self.acc.reduce(meter.loss, "sum") / max(meter.tokens, 1)).item()
        tokens_per_s = meter.inputs / max(meter.seconds, 1e-9)
        if not math.isfinite(loss):
            raise TunesmithError(
                f"training loss became {loss} at step {state.step}; lower training.learning_rate "
                f"(now {self.cfg.learning_rate}) or set training.max_grad_norm"
            )
        lr = self.scheduler.get_last_lr()[0]
        grad_norm = getattr(self, "grad_norm", None)
        if self.log:
            self.log.write(
                type="train",
                step=state.step,
                epoch=state.epoch,
                loss=loss,
                lr=lr,
                grad_norm=float(grad_norm) if grad_norm is not None else None,
                tokens_per_s=tokens_per_s,
                tokens_seen=state.tokens_seen,
                elapsed=state.elapsed,
            )
        progress.update(bar, loss=f"{loss:.4f}", lr=f"{lr:.2e}", tps=f"{tokens_per_s:.0f}")

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
            save_checkpoint(self.run_dir, trainable, optimizer_state, self.scheduler, state, self.cfg.keep_checkpoints,
                            staged=self.deepspeed)
        self.acc.wait_for_everyone()

    def _restore(self) -> TrainState:
        checkpoints = complete_checkpoints(self.run_dir)
        if not checkpoints:
            raise TunesmithError(f"--resume: no complete checkpoint in {self.run_dir / 'checkpoints'}")
        folder = checkpoints[-1]
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

    def _model(self) -> nn.Module:
        return self.acc.unwrap_model(self.task).model

    def _should_stop(self) -> bool:
        # Every rank must agree, or one rank would wait forever in the next collective.
        flag = torch.tensor(float(self.stop_requested), device=self.acc.device)
        return bool(self.acc.reduce(flag, "sum").item() > 0) if self.acc.num_processes > 1 else self.stop_requested


@dataclass
class _Meter:
    """What happened since the last log line: summed token loss (on device), token counts, step seconds."""

    loss: torch.Tensor
    tokens: int = 0
    inputs: int = 0
    seconds: float = 0.0

    def add(self, loss: torch.Tensor, tokens: int, inputs: int, seconds: float) -> None:
        self.loss += loss
        self.tokens += tokens
        self.inputs += inputs
        self.seconds += seconds


def real_tokens(batch: dict) -> int:
    """Input tokens that are not padding (packed batches have none)."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else batch["input_ids"].numel()


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    # Decay matrices only: decaying biases and norm gains hurts and is not what users expect.
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # No empty groups: DeepSpeed drops them from the optimizer, leaving the scheduler with one lr too many.
    return [group for group in groups if group["params"]]


def _ppl(loss: float) -> float:
    return math.exp(loss) if loss < 700 else float("inf")


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
