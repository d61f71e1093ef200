"""What the LLM speed benchmarks (lora_vs_trl.py, lever_ab.py, profile_step.py) share: the options of one training
job with one set of defaults, and child runs that alternate between variants.

A job is the settings `lora_vs_trl.make_job` reads. Each benchmark offers the options it needs (`add_job_options`)
and `job_settings` fills in the rest from JOB_DEFAULTS, so no script restates another's defaults.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

JOB_DEFAULTS = {
    "workload": "cooking",
    "train": None,
    "test": None,
    "max_examples": None,
    "max_test_examples": None,
    "epochs": 1,
    "batch_size": 8,
    "max_length": 1024,
    "learning_rate": 2e-4,
    "precision": "auto",
    "seed": 0,
    "gradient_checkpointing": False,
    "tunesmith_set": [],
    "tunesmith_patch": [],
    "trl_set": [],
}
# add_argument keywords per option (the default comes from JOB_DEFAULTS or the benchmark).
OPTIONS = {
    "workload": {"help": "cooking: the cooking-assistant chats; short: generated JSON-extraction chats "
                         "(llm/short_rows.py)"},
    "train": {"type": Path, "help": "chat JSONL, one reply each (default: the workload's)"},
    "test": {"type": Path, "help": "chat JSONL, one reply each (default: the workload's)"},
    "max_examples": {"type": int, "help": "train on the first N examples"},
    "max_test_examples": {"type": int, "help": "score the first N test examples"},
    "epochs": {"type": int},
    "batch_size": {"type": int, "help": "examples per optimizer step (no accumulation)"},
    "max_length": {"type": int, "help": "truncate examples to this many tokens"},
    "learning_rate": {"type": float},
    "precision": {"choices": ["auto", "bf16", "fp32"], "help": "bf16 autocast or plain fp32; auto: bf16 where the "
                                                               "device runs it natively, as tunesmith picks"},
    "seed": {"type": int},
    "gradient_checkpointing": {"action": "store_true", "help": "turn it on for both tools (off by default)"},
    "tunesmith_set": {"action": "append", "metavar": "KEY=VALUE",
                      "help": "tunesmith config override, applied last (repeatable), e.g. training.packing=true"},
    "tunesmith_patch": {"action": "append", "metavar": "NAME",
                        "help": "a speed lever from benchmarks/llm/patches.py, patched into tunesmith's run only "
                                "(repeatable)"},
    "trl_set": {"action": "append", "metavar": "KEY=VALUE",
                "help": "SFTConfig override, applied last (repeatable), e.g. packing=true"},
}


def add_job_options(parser: argparse.ArgumentParser, names: Sequence[str], choices: dict | None = None,
                    **defaults) -> None:
    """Add `--name` for each job setting in `names`; `choices` and `defaults` (by setting) replace the table's."""
    for name in names:
        spec = {**OPTIONS[name], "default": defaults.get(name, JOB_DEFAULTS[name])}
        if name in (choices or {}):
            spec["choices"] = choices[name]
            if "metavar" in spec:  # argparse shows the metavar in place of the choices
                spec["help"] += f": {', '.join(choices[name])}"
        if spec.get("action") == "append":
            spec["default"] = list(spec["default"])  # argparse appends to the default list itself
        if spec.get("action") == "store_true":
            spec.pop("default")
        parser.add_argument(f"--{name.replace('_', '-')}", **spec)


def job_settings(args: argparse.Namespace, **fixed) -> argparse.Namespace:
    """Every job setting: JOB_DEFAULTS, then the benchmark's parsed options, then `fixed`."""
    given = {key: value for key, value in vars(args).items() if key in JOB_DEFAULTS}
    return argparse.Namespace(**{**JOB_DEFAULTS, **given, **fixed})


def alternating(variants: Sequence[str], repeats: int) -> list[str]:
    """A, B, B, A, A, B, ...: each variant goes first as often as the other, so drift on a shared machine (another
    process starting, the CPU warming) hits both alike."""
    return [v for repeat in range(repeats) for v in (variants if repeat % 2 == 0 else variants[::-1])]


def run_alternating(variants: Sequence[str], repeats: int, workdir: Path,
                    launch: Callable[[str, Path, str], dict],
                    after: Callable[[int, int, dict], None]) -> list[dict]:
    """Run `launch(variant, stem, label)` (one child process each) in alternating order; each result gets its
    `tool` (the variant) and `run` (1-based); `after(index, total, result)` reports it."""
    order = alternating(variants, repeats)
    runs = []
    for index, variant in enumerate(order, 1):
        result = launch(variant, workdir / f"{index:02d}-{variant}", f"{variant} (run {index})")
        result.update(tool=variant, run=index)
        runs.append(result)
        after(index, len(order), result)
    return runs
