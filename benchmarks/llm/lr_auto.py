"""What `training.learning_rate: auto` would choose for a config: the range test alone, no training after it.

    python benchmarks/llm/lr_auto.py examples/cooking-assistant/lora.yaml
    python benchmarks/llm/lr_auto.py examples/cooking-assistant/lora.yaml --set training.batch_size=4 --repeats 3

The config runs through tunesmith.run.run() as a real run would (model, data, method, precision, the same training
batches), but the loop is replaced by the range test (train/lr_range.py), so no training follows it and the base
model is not scored. It prints the chosen rate, the rule's reason, the steepest-descent rate, the method's default and
the config's own rate, and records the curve: a results JSON (benchmarks/results/lr_auto-<device>-<time>.json) and,
in the run folder, lr_range.json and lr_range.png. Compare the choice with a `tunesmith sweep` over
training.learning_rate on the same config: the sweep's best should lie near it. --repeats runs the test under other
seeds (training.seed changes the batch order and the adapter's initialisation), which shows how stable the choice is.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # as a script, only this file's folder would be on sys.path

from benchmarks.common.report import write_stamped  # noqa: E402


class RangeTestDone(Exception):
    """Stops the run once the range test has chosen (raised in place of training)."""

    def __init__(self, choice, seconds: float):
        super().__init__("range test done")
        self.choice, self.seconds = choice, seconds


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from tunesmith.config.load import load_config
    from tunesmith.methods import registry

    results = []
    for repeat in range(args.repeats):
        overrides = [*args.set, "eval.compare_base=false", f"training.seed={args.seed + repeat}",
                     f"output_dir={Path(args.run_dir or tempfile.mkdtemp(prefix='lr_auto-')) / f'seed-{args.seed + repeat}'}"]
        config = load_config(args.config, overrides)
        default = registry.of(config.method).learning_rate
        choice, seconds = range_test(config, default)
        row = {"seed": args.seed + repeat, "rate": choice.rate, "reason": choice.reason, "fallback": choice.fallback,
               "steepest": choice.steepest, "method_default": default, "configured": config.training.learning_rate,
               "seconds": round(seconds, 1), "run_dir": config.output_dir, "curve": {
                   "rates": choice.rates, "losses": choice.losses, "smoothed": choice.smoothed}}
        results.append(row)
        print(f"seed {row['seed']}: learning_rate auto -> {choice.rate:g} ({choice.reason}); steepest descent at "
              f"{choice.steepest}; method default {default:g}; config {config.training.learning_rate:g}; "
              f"{seconds:.0f} s; curve in {config.output_dir}/lr_range.png", flush=True)

    output = write_stamped("llm/lr_auto", {
        "config": str(args.config),
        "overrides": args.set,
        "chosen": [row["rate"] for row in results],
        "runs": results,
    }, args.output)
    print(f"results: {output}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The learning rate training.learning_rate: auto picks for a config.")
    parser.add_argument("config", type=Path, help="a tunesmith run config (YAML)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override (repeatable), e.g. training.batch_size=4")
    parser.add_argument("--repeats", type=int, default=1, help="run the test under this many seeds")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--run-dir", type=Path, help="where the run folders go (default: a temp folder)")
    parser.add_argument("--output", type=Path, help="results JSON (default benchmarks/results/lr_auto-...json)")
    return parser.parse_args(argv)


def range_test(config, method_default: float):
    """Run the config as tunesmith would up to training, then only the range test; returns (choice, seconds)."""
    import tunesmith.run as tunesmith_run
    import tunesmith.tasks.causal_lm.run as llm_run
    from tunesmith.train.loop import find_learning_rate

    original = llm_run.train

    def range_test_only(task, cfg, run_dir, accelerator, *, events=None, **_):
        cfg = cfg.model_copy()
        cfg.use_method_learning_rate(method_default)  # the centre of the test, and its fallback
        started = time.perf_counter()
        choice = find_learning_rate(task, cfg, run_dir, accelerator, events=events)
        raise RangeTestDone(choice, time.perf_counter() - started)

    llm_run.train = range_test_only
    try:
        tunesmith_run.run(config, overwrite=True)
    except RangeTestDone as done:
        return done.choice, done.seconds
    finally:
        llm_run.train = original
    raise RuntimeError("the run finished without reaching the training loop")


if __name__ == "__main__":
    main()
