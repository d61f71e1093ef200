"""The from-scratch baseline: the run's architecture with random weights, trained on the same data with the same
token budget, in RUN_DIR/eval/scratch/, so the report can answer the case study's three questions side by side:
quality (the scores), time (training seconds) and compute (training tokens and FLOPs).

The scratch run is an ordinary run (`tunesmith.run.run`): same data, seed, batching and schedule as the tuned run,
`model_init: scratch` with `method: full`, `training.max_steps` = the tuned run's steps, and a pretraining learning
rate (below), or the one `eval.scratch.learning_rate` sets. A finished one is reused by a second evaluation; a
stopped one continues where it stopped.
"""

from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console

from tunesmith.config.load import build_config, load_config
from tunesmith.config.schema import RunConfig
from tunesmith.errors import TunesmithError
from tunesmith.evaluate.training_budget import Training, read_training

SCRATCH_DIR = Path("eval") / "scratch"
# GPT-3's pretraining learning rates by model size (Brown et al. 2020, table 2.1), which from-scratch training of
# small transformers commonly follows (nanoGPT uses 6e-4 for 124M). Fine-tuning rates (full: 2e-5) are meant to
# nudge trained weights and barely move random ones in a short budget.
PRETRAINING_RATES = ((125e6, 6e-4), (350e6, 3e-4), (760e6, 2.5e-4), (1.3e9, 2e-4), (2.7e9, 1.6e-4),
                     (6.7e9, 1.2e-4), (13e9, 1e-4), (175e9, 6e-5))
PRETRAINING_NOTE = ("compute counts this training only: the base model's own pretraining, which the tuned model "
                    "inherits, is not included")


def pretraining_rate(parameters: int | None) -> tuple[float, float]:
    """(model size, rate): GPT-3's row nearest to `parameters` on a log scale (unknown: the smallest)."""
    return min(PRETRAINING_RATES, key=lambda row: abs(math.log(row[0] / max(parameters or 1, 1))))


def scratch_learning_rate(parameters: int | None, configured: float | str = "auto") -> tuple[float, str]:
    """(rate, why): `eval.scratch.learning_rate`, or under auto GPT-3's pretraining rate for the nearest size."""
    size, rate = pretraining_rate(parameters)
    gpt3 = (f"GPT-3's pretraining rate for the nearest model size ({size / 1e6:,.0f}M parameters; Brown et al. "
            "2020, table 2.1)")
    if configured != "auto":
        return configured, f"learning rate {configured:g}: set by eval.scratch.learning_rate (auto: {rate:g}, {gpt3})"
    return rate, (f"learning rate {rate:g} (eval.scratch.learning_rate: auto): {gpt3}, since fine-tuning rates "
                  "barely move random weights")


def scratch_config(config: RunConfig, budget: Training, run_dir: Path, learning_rate: float) -> RunConfig:
    """The run's config turned into its from-scratch twin, trained for `budget.steps` steps in RUN_DIR/eval/scratch."""
    if config.stages or config.refine or config.init_adapter:
        what = "stages" if config.stages else "refine" if config.refine else "init_adapter"
        raise TunesmithError(f"--baselines scratch: {run_dir} is a run with {what}, whose training budget spans "
                             "several runs; compare a single run with the from-scratch baseline")
    raw = config.model_dump(mode="json")
    raw.update(model_init="scratch", method={"name": "full"}, output_dir=str(Path(run_dir) / SCRATCH_DIR), sweep=None)
    raw["training"].update(max_steps=budget.steps, learning_rate=learning_rate)
    # Its own end-of-run scores: perplexity only (no generation, no base model); `tunesmith eval` scores it in full.
    raw["eval"] = {"metrics": ["perplexity"], "compare_base": False, "max_examples": config.eval.max_examples,
                   "batch_size": config.eval.batch_size}
    return build_config(raw, source=f"{run_dir}/config.yaml (from-scratch baseline)")


def _trained_steps(folder: Path) -> int:
    try:
        return read_training(folder).steps
    except TunesmithError:
        return 0


def train_scratch(config: RunConfig, run_dir: Path, parameters: int | None, console: Console) -> tuple[Path, dict]:
    """Train (or reuse, or continue) the from-scratch baseline of `run_dir`; (its folder, what it was given)."""
    from tunesmith.run import run
    from tunesmith.train.loop import TrainingInterrupted

    budget = read_training(run_dir)
    learning_rate, why = scratch_learning_rate(parameters, config.eval.scratch.learning_rate)
    scratch = scratch_config(config, budget, run_dir, learning_rate)
    folder = Path(scratch.output_dir)
    saved = folder / "config.yaml"
    same = saved.is_file() and load_config(saved).model_dump() == scratch.model_dump()
    given = {"run_dir": str(folder), "learning_rate": learning_rate, "learning_rate_reason": why,
             "steps": budget.steps, "reused": False}
    if same and (folder / "model").is_dir() and _trained_steps(folder) == budget.steps:
        console.print(f"from-scratch baseline: reusing {folder} (trained {budget.steps} steps)")
        return folder, {**given, "reused": True}
    console.print(f"from-scratch baseline: training {config.model}'s architecture from random weights for "
                  f"{budget.steps} steps ({budget.tokens:,} tokens, as the tuned run) in {folder}; {why}")
    try:
        run(scratch, resume=same, overwrite=saved.is_file() and not same, console=console)
    except TrainingInterrupted as stopped:
        raise TrainingInterrupted(f"the from-scratch baseline in {folder} stopped at step {stopped.step} (checkpoint "
                                  "saved); run the same `tunesmith eval` again to continue it", stopped.step) from None
    return folder, given


def case_study(tuned: Training, tuned_parameters: int, scratch: Training, scratch_parameters: int,
               given: dict) -> dict:
    """report.json's `scratch` section: both trainings' steps, tokens, seconds, FLOPs, and one line for the verdicts."""
    step = tuned.tokens_per_step()
    same = abs(scratch.tokens - tuned.tokens) <= step
    time_part = (f"training time {scratch.seconds:.1f} s from scratch vs {tuned.seconds:.1f} s tuned"
                 if scratch.seconds is not None and tuned.seconds is not None else "training time not recorded")
    budget = (f"the same budget ({tuned.tokens:,} training tokens)" if same else
              f"{scratch.tokens:,} training tokens from scratch vs {tuned.tokens:,} tuned (budgets differ by more than "
              "one batch)")
    line = (f"fine-tuning vs training from scratch on {budget}: {time_part}; compute "
            f"{scratch.flops(scratch_parameters):.2e} vs {tuned.flops(tuned_parameters):.2e} FLOPs "
            f"(~6 x parameters x tokens); {PRETRAINING_NOTE}")
    return {**given, "same_budget": same, "tokens_per_step": step, "line": line,
            "training": {"tuned": tuned.to_dict(tuned_parameters), "scratch": scratch.to_dict(scratch_parameters)},
            "flops_rule": "6 x parameters x training tokens (an upper bound for adapter methods, whose frozen "
                          "weights need no weight gradients)", "note": PRETRAINING_NOTE}
