"""`tunesmith methods CONFIG`: a short, equal-budget trial of every LLM method on the config's model and data.

Each trial runs in its own process, so its peak memory is its own (on CPU the peak RSS of a process only
grows); the table compares trainable parameters, peak memory, seconds per step and validation loss.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from tunesmith.config.load import build_config, load_config, save_config
from tunesmith.config.schema import RunConfig
from tunesmith.methods import registry
from tunesmith.pipelines.stages import base_raw

RESULT = "trial.json"


def trial_methods(family: str = "llm") -> list[str]:
    return registry.names(family)


def trial_config(config: RunConfig, method: str, steps: int, root: Path) -> RunConfig:
    raw = base_raw(config)
    knobs = registry.get(method).trial_knobs  # e.g. lora and qlora share the user's rank and targets
    raw["method"] = {"name": method, **{k: v for k, v in raw["method"].items() if k in knobs}}
    raw["training"].update(max_steps=steps, learning_rate=None, eval_every=10**9, save_every=10**9,
                           log_every=max(1, steps // 4))
    raw["data"]["test"] = None
    raw["eval"].update(compare_base=False, metrics=["perplexity"], max_examples=1)
    raw["output_dir"] = str(root / method)
    return build_config(raw)


def run_trials(config: RunConfig, methods: list[str], steps: int, console: Console) -> list[dict]:
    root = Path(config.output_dir) / "method-trials"
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for method in methods:
        trial = trial_config(config, method, steps, root)
        path = root / f"{method}.yaml"
        save_config(trial, path)
        console.print(f"trial: {method} ({steps} steps) ...")
        done = subprocess.run([sys.executable, "-m", "tunesmith.pipelines.method_trials", str(path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["failed"])[-1]
            rows.append({"method": method, "error": reason})
            continue
        rows.append({"method": method, **json.loads((Path(trial.output_dir) / RESULT).read_text())})
    (root / "methods.json").write_text(json.dumps(rows, indent=2))
    console.print(trials_table(rows))
    return rows


def trials_table(rows: list[dict]) -> Table:
    table = Table(title="methods: equal-budget trial")
    for column in ("method", "trainable params", "peak memory MiB", "s/step", "val loss"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for row in rows:
        if "error" in row:
            table.add_row(row["method"], "[red]" + row["error"][:60], "", "", "")
            continue
        share = 100 * row["trainable_params"] / row["total_params"]
        table.add_row(row["method"], f"{row['trainable_params']:,} ({share:.2f}%)", f"{row['peak_memory_mib']:.0f}",
                      f"{row['seconds_per_step']:.2f}", f"{row['val_loss']:.4f}" if row["val_loss"] is not None else "-")
    return table


def _trial_child(config_path: str) -> None:
    """Run one trial and write its measurements next to it (called in a fresh process)."""
    from tunesmith import offline
    from tunesmith.run import run

    offline.configure()
    config = load_config(config_path)
    summary = run(config, overwrite=True, console=Console(quiet=True))
    meta = json.loads((summary.run_dir / "report.json").read_text())["meta"]
    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    result = {
        "trainable_params": meta["trainable_params"], "total_params": meta["total_params"],
        "peak_memory_mib": peak, "seconds_per_step": meta["train_seconds"] / max(meta["train_steps"], 1),
        "val_loss": summary.val_loss, "precision": meta["precision"],
    }
    (summary.run_dir / RESULT).write_text(json.dumps(result))


if __name__ == "__main__":
    _trial_child(sys.argv[1])
