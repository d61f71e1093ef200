"""Checkpoints that survive a crash: written to a temporary folder, renamed when complete, last K kept.

A checkpoint holds only what training changes (trainable tensors, optimizer, scheduler, RNG, position),
so LoRA checkpoints stay small; the frozen base is reloaded from the model source on resume. Under FSDP the
tensors are gathered whole (train/fsdp.py) and optimizer.pt is keyed by parameter name instead of position.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

PREFIX = "step-"


@dataclass
class TrainState:
    step: int = 0  # optimizer steps done
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of `epoch` already consumed
    tokens_seen: int = 0
    elapsed: float = 0.0


def save_checkpoint(run_dir: Path, trainable: dict[str, torch.Tensor], optimizer_state: dict, scheduler,
                    state: TrainState, keep: int) -> Path:
    """`trainable`: the trainable tensors by name (methods.llm.trainable_state); `optimizer_state`: a state_dict."""
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{state.step:07d}"
    tmp = root / f".tmp-{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(trainable, tmp / "trainable.safetensors")
    torch.save(optimizer_state, tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(_rng_state(), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps(asdict(state)))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in complete_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old)
    return final


def complete_checkpoints(run_dir: Path) -> list[Path]:
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / "state.json").is_file())


def load_checkpoint(folder: Path, scheduler) -> tuple[dict[str, torch.Tensor], dict, TrainState]:
    """Restore the scheduler and the random state; return (trainable tensors, optimizer state, position) for the
    caller to load into its model and optimizer."""
    # Our own files, read with weights_only so even a tampered checkpoint cannot execute code.
    optimizer_state = torch.load(folder / "optimizer.pt", weights_only=True)
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
    _set_rng_state(torch.load(folder / "rng.pt", weights_only=True))
    state = TrainState(**json.loads((folder / "state.json").read_text()))
    return load_file(folder / "trainable.safetensors"), optimizer_state, state


def _rng_state() -> dict:
    version, internal, gauss = random.getstate()
    state = {"torch": torch.get_rng_state(), "python": list(internal), "python_version": version, "gauss": gauss}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
