"""What a finished run spent on training: optimizer steps, tokens trained on, seconds, and the compute that implies.

Steps and tokens come from report.json's meta (the whole run, resumes included), else from the last training line of
metrics.jsonl. Seconds are metrics.jsonl's `elapsed`: the optimizer steps alone (no evaluation, checkpoints or
scoring), summed over resumes, so two runs' times compare like for like; report.json's train_seconds only where
metrics.jsonl is missing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tunesmith.errors import TunesmithError

# Training compute of a dense transformer: ~6 FLOPs per parameter per token (2 forward, 4 backward; Kaplan et al.
# 2020). Adapter methods skip the frozen weights' gradients (~4 per parameter), so for them this is an upper bound.
FLOPS_PER_PARAMETER_TOKEN = 6


@dataclass(frozen=True)
class Training:
    steps: int
    tokens: int
    seconds: float | None

    def flops(self, parameters: int) -> float:
        return float(FLOPS_PER_PARAMETER_TOKEN * parameters * self.tokens)

    def tokens_per_step(self) -> float:
        return self.tokens / max(self.steps, 1)

    def to_dict(self, parameters: int) -> dict:
        return {**asdict(self), "parameters": parameters, "flops": self.flops(parameters)}


def _last_training_line(run_dir: Path) -> dict | None:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return next((line for line in reversed(lines) if line.get("type") == "train"), None)


def read_training(run_dir: Path) -> Training:
    """The training a run folder records; a TunesmithError when it records none (training never finished a step)."""
    run_dir = Path(run_dir)
    report = run_dir / "report.json"
    meta = json.loads(report.read_text()).get("meta", {}) if report.is_file() else {}
    last = _last_training_line(run_dir) or {}
    steps = meta.get("train_steps", last.get("step"))
    tokens = meta.get("train_tokens", last.get("tokens_seen"))
    if not steps or tokens is None:
        raise TunesmithError(f"{run_dir}: no training recorded (report.json has no train_steps/train_tokens and "
                             "metrics.jsonl no training line); finish the run first")
    return Training(int(steps), int(tokens), last.get("elapsed", meta.get("train_seconds")))
