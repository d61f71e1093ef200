"""Does `training.learning_rate: auto` land near the best rate a sweep finds? For one config, on the same data and
the same training budget:

1. a `tunesmith sweep` over training.learning_rate alone, on a log scale spanning two decades either side of the
   method's default rate, ranked by its own metric, the final validation loss: five trials queued in the study as a
   grid (one rate per decade, the default among them), then the sweep continued with the two rates half a decade
   either side of the grid's best. With a handful of trials a grid covers four decades more evenly than TPE's random
   start would;
2. one run with `training.learning_rate: auto`: the range test (train/lr_range.py, as lr_auto.py runs it) and then
   training at the rate it chose;
3. the comparison: auto's rate, the sweep's best, their ratio, the validation loss at each and the gap.

    python benchmarks/llm/lr_auto_vs_sweep.py examples/cooking-assistant/lora.yaml --max-examples 64 \\
        --set training.max_steps=16 --set training.batch_size=4
    python benchmarks/llm/lr_auto_vs_sweep.py extraction --max-examples 64 --set training.max_steps=16

A task is a config file or `extraction`: lora.yaml's method and training on generated JSON-extraction chats
(llm/short_rows.py). --max-examples trains on the first N training examples and validates on the next
--validation-examples (held out from training, the same for every run); the config's test set is not used and
nothing is generated (the runs end with validation perplexity only). The
results go to benchmarks/results/lr_auto_vs_sweep-<device>-<time>.json, the runs to --run-dir (default a temp
folder): sweep/ (trial-NNN, trials.md, best.yaml) and auto/ (lr_range.json and .png: the range test's curve). Run
again with the same --run-dir, it continues the study and reuses a finished auto run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # as a script, only this file's folder would be on sys.path

from benchmarks.common.report import write_stamped  # noqa: E402

DECADES = 2  # the sweep spans this many decades either side of the method's default rate
KEY = "training.learning_rate"
NEVER = 10**9  # eval_every / save_every: validate once, at the end (the sweep's metric); no checkpoints
COOKING = REPO / "examples" / "cooking-assistant" / "lora.yaml"
TASKS = ("extraction",)  # named tasks, besides config files
STUDY = "learning_rate"
AUTO_RESULT = "lr_auto_vs_sweep.json"  # the auto run's measurements, in its folder, for a rerun to reuse


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from tunesmith.methods import registry

    workdir = Path(args.run_dir or tempfile.mkdtemp(prefix="lr_auto_vs_sweep-")).resolve()
    config = task_config(args, workdir)
    default = registry.of(config.method).learning_rate
    low, high = default / 10**DECADES, default * 10**DECADES
    print(f"task {args.task}: {config.method.name} on {config.model}, {config.training.max_steps or 'the config'}'s "
          f"steps; method default rate {default:g}, sweep {low:g} .. {high:g}; runs in {workdir}", flush=True)

    sweep_started = time.perf_counter()
    sweep = run_sweep(config, workdir / "sweep", low, high)
    sweep_seconds = time.perf_counter() - sweep_started
    auto = run_auto(config, workdir / "auto")

    best = sweep.best
    best_rate, best_loss = best["params"][KEY], best["metric"]
    comparison = {
        "auto_rate": auto["rate"],
        "sweep_best_rate": best_rate,
        "ratio_auto_over_best": auto["rate"] / best_rate,
        "decades_apart": math.log10(auto["rate"] / best_rate),
        "auto_val_loss": auto["val_loss"],
        "sweep_best_val_loss": best_loss,
        "loss_gap": auto["val_loss"] - best_loss,
        "relative_loss_gap": (auto["val_loss"] - best_loss) / best_loss,
        "method_default_rate": default,
        "method_default_val_loss": next((t["metric"] for t in sweep.trials
                                         if math.isclose(t["params"].get(KEY, 0.0), default, rel_tol=1e-9)), None),
        "config_rate": config.training.learning_rate,
        # The best at an end of the range: the loss may fall further outside it, so "near" is a lower bound.
        "sweep_best_at_range_end": any(math.isclose(best_rate, end, rel_tol=1e-6) for end in (low, high)),
    }
    print(summary(comparison), flush=True)

    output = write_stamped("llm/lr_auto_vs_sweep", {
        "task": args.task,
        "overrides": args.set,
        "train_examples": args.max_examples,
        "validation_examples": args.validation_examples,
        "budget": {"max_steps": config.training.max_steps, "epochs": config.training.epochs,
                   "batch_size": config.training.batch_size,
                   "gradient_accumulation": config.training.gradient_accumulation},
        "comparison": comparison,
        "summary": summary(comparison),
        "sweep": {"low": low, "high": high, "trials": sweep.trials, "best_trial": best["number"],
                  "seconds": round(sweep_seconds, 1), "folder": str(sweep.sweep_dir)},
        "auto": auto,
    }, args.output)
    print(f"results: {output}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="training.learning_rate: auto against a sweep's best rate.")
    parser.add_argument("task", help=f"a tunesmith config (YAML) or a named task: {', '.join(TASKS)}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run (repeatable), e.g. training.max_steps=16")
    parser.add_argument("--max-examples", type=int, default=64, help="train on the first N training examples")
    parser.add_argument("--validation-examples", type=int, default=16,
                        help="validate on the N training examples after those (never trained on)")
    parser.add_argument("--run-dir", type=Path, help="where the runs go (default: a temp folder)")
    parser.add_argument("--output", type=Path, help="results JSON (default benchmarks/results/lr_auto_vs_sweep-...)")
    args = parser.parse_args(argv)
    if args.task not in TASKS and not Path(args.task).is_file():
        parser.error(f"task {args.task!r}: not a config file nor one of {', '.join(TASKS)}")
    return args


# -- the task ----------------------------------------------------------------------------------------------------
def task_config(args: argparse.Namespace, workdir: Path):
    """The task's config on the held-out subsets, validated at the end only, its test set not scored."""
    from tunesmith.config.load import load_config

    source = COOKING if args.task == "extraction" else Path(args.task)
    given = load_config(source, args.set)
    train = Path(given.data.train)
    if args.task == "extraction":
        from benchmarks.llm import short_rows

        train, _ = short_rows.write(workdir / "extraction")
    subsets = held_out(train, args.max_examples, args.validation_examples, workdir / "data")
    # Scored at the end by validation perplexity alone: generating answers would cost more than the training.
    overrides = {
        "data.train": str(subsets[0]), "data.validation": str(subsets[1]), "data.validation_split": 0.0,
        "data.test": None, "eval.compare_base": False, "eval.metrics": ["perplexity"], "eval.task": {},
        "eval.comparison.headline": None, "training.eval_every": NEVER, "training.save_every": NEVER,
    }
    return load_config(source, [*args.set, *(f"{key}={json.dumps(value)}" for key, value in overrides.items())])


def held_out(train: Path, count: int, validation: int, folder: Path) -> tuple[Path, Path]:
    """The first `count` lines of `train` and the `validation` lines after them, as two files."""
    lines = [line for line in train.read_text().splitlines() if line.strip()]
    if len(lines) < count + validation:
        sys.exit(f"{train}: {len(lines)} examples, fewer than --max-examples + --validation-examples = "
                 f"{count + validation}")
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "train.jsonl", folder / "validation.jsonl"
    paths[0].write_text("\n".join(lines[:count]) + "\n")
    paths[1].write_text("\n".join(lines[count:count + validation]) + "\n")
    return paths


# -- the sweep and the auto run ----------------------------------------------------------------------------------
def grid(low: float, high: float) -> list[float]:
    """One rate per decade from low to high, the ends exactly low and high (the space's bounds)."""
    inner = [float(f"{low * 10**i:.3g}") for i in range(1, 2 * DECADES)]  # 2e-05, not 1.9999999999999998e-05
    return [low, *inner, high]


def neighbours(best: float, low: float, high: float, tried: list[float]) -> list[float]:
    """The rates half a decade either side of `best`, inside [low, high], unless a tried rate is within 10%."""
    near = [float(f"{best * 10**step:.3g}") for step in (-0.5, 0.5)]
    return [r for r in near if low <= r <= high and not any(math.isclose(r, t, rel_tol=0.1) for t in tried)]


def run_sweep(config, folder: Path, low: float, high: float):
    """`tunesmith sweep` over the learning rate alone, twice on one study: the grid queued first, then the two
    rates half a decade either side of its best. Queued trials come before the sampler's own, so TPE never picks;
    a rerun in the same --run-dir continues the study (finished trials are not run again)."""
    import optuna

    from tunesmith.config.load import build_config
    from tunesmith.pipelines.sweep import STUDY_DB, run_sweep as sweep

    folder.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(storage=f"sqlite:///{folder / STUDY_DB}", study_name=STUDY, direction="minimize",
                                load_if_exists=True)

    def tried() -> list[float]:
        return [t.params[KEY] for t in study.get_trials(deepcopy=False) if KEY in t.params]

    def queue_and_sweep(rates: list[float]):
        for rate in rates:
            study.enqueue_trial({KEY: rate})
        finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                             optuna.trial.TrialState.PRUNED))
        raw = config.model_dump(mode="json")
        raw["output_dir"] = str(folder)
        raw["sweep"] = {"metric": "val_loss", "trials": len(finished) + len(rates), "pruner": "none", "seed": 0,
                        "study": STUDY, "space": {KEY: {"type": "float", "low": low, "high": high, "log": True}}}
        return sweep(build_config(raw, source="lr_auto_vs_sweep sweep"))

    result = queue_and_sweep([rate for rate in grid(low, high) if rate not in tried()])
    return queue_and_sweep(neighbours(result.best["params"][KEY], low, high, tried()))


def run_auto(config, folder: Path) -> dict:
    """One run with learning_rate: auto: the range test's choice, its curve and the run's validation loss. A finished
    one with the same config (a rerun in the same --run-dir) is read back instead of trained again."""
    from tunesmith.config.load import build_config, load_config
    from tunesmith.run import run
    from tunesmith.train import lr_range

    raw = config.model_dump(mode="json")
    raw["output_dir"] = str(folder)
    raw["training"]["learning_rate"] = "auto"
    auto = build_config(raw, source="lr_auto_vs_sweep auto run")
    saved = folder / AUTO_RESULT
    if saved.is_file() and load_config(folder / "config.yaml").model_dump() == auto.model_dump():
        return {**json.loads(saved.read_text()), "reused": True}
    marks = {}

    def on_event(event) -> None:
        marks.setdefault(event.type, time.perf_counter())

    started = time.perf_counter()
    result = run(auto, overwrite=True, on_event=on_event)
    choice = lr_range.saved(folder)
    measured = {
        "rate": choice.rate, "reason": choice.reason, "fallback": choice.fallback, "steepest": choice.steepest,
        "tried": choice.tried, "val_loss": result.val_loss, "run_dir": str(folder),
        # The range test runs between the memory plan and the start of training.
        "range_test_seconds": round(marks["learning_rate_chosen"] - marks["plan"], 1),
        "training_seconds": round(marks["run_finished"] - marks["training_started"], 1),
        "seconds": round(time.perf_counter() - started, 1),
        "curve": {"rates": choice.rates, "losses": choice.losses, "smoothed": choice.smoothed},
    }
    saved.write_text(json.dumps(measured, indent=1))
    return {**measured, "reused": False}


def summary(c: dict) -> str:
    default = c["method_default_val_loss"]
    return (f"auto {c['auto_rate']:.3g} vs sweep best {c['sweep_best_rate']:.3g} (ratio "
            f"{c['ratio_auto_over_best']:.2f}, {c['decades_apart']:+.2f} decades); validation loss "
            f"{c['auto_val_loss']:.4f} vs {c['sweep_best_val_loss']:.4f} (gap {c['loss_gap']:+.4f}, "
            f"{100 * c['relative_loss_gap']:+.1f}%); method default {c['method_default_rate']:g}"
            + (f": {default:.4f}" if default is not None else ""))


if __name__ == "__main__":
    main()
