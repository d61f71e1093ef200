"""Checkpoints that survive a crash: written to a temporary folder, renamed when complete, last K kept.

A checkpoint holds only what training changes (trainable tensors, optimizer, scheduler, RNG, position),
so LoRA checkpoints stay small; the frozen base is reloaded from the model source on resume. Under FSDP the
tensors are gathered whole (train/fsdp.py) and optimizer.pt is keyed by parameter name instead of position;
under DeepSpeed a `deepspeed/` folder with its per-rank optimizer partitions replaces optimizer.pt.
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


def staging_folder(run_dir: Path, step: int) -> Path:
    """Where a checkpoint is written before it is complete (renamed to `step-N` when it is)."""
    return run_dir / "checkpoints" / f".tmp-{PREFIX}{step:07d}"


def start_staging(run_dir: Path, step: int) -> Path:
    tmp = staging_folder(run_dir, step)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def save_checkpoint(run_dir: Path, trainable: dict[str, torch.Tensor], optimizer_state: dict | None, scheduler,
                    state: TrainState, keep: int, staged: bool = False,
                    extra_files: dict[str, str] | None = None) -> Path:
    """`trainable`: the trainable tensors by name (methods.parameters.trainable_state); `optimizer_state`: a
    state_dict, or None when the optimizer wrote its own files into the staging folder first (`staged`, DeepSpeed);
    `extra_files`: text files (name -> content) written into the checkpoint before it is complete."""
    tmp = staging_folder(run_dir, state.step) if staged else start_staging(run_dir, state.step)
    final = run_dir / "checkpoints" / f"{PREFIX}{state.step:07d}"
    save_file(trainable, tmp / "trainable.safetensors")
    if optimizer_state is not None:
        torch.save(optimizer_state, tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(_rng_state(), tmp / "rng.pt")
    for name, text in (extra_files or {}).items():
        (tmp / name).write_text(text)
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


def load_checkpoint(folder: Path, scheduler) -> tuple[dict | None, TrainState]:
    """Restore the scheduler and the random state; return (optimizer state, or None if the optimizer saved its own
    files; position). The trained tensors are read with `load_trainable` by strategies that need them."""
    # Our own files, read with weights_only so even a tampered checkpoint cannot execute code.
    optimizer_file = folder / "optimizer.pt"
    optimizer_state = torch.load(optimizer_file, weights_only=True) if optimizer_file.is_file() else None
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
    _set_rng_state(torch.load(folder / "rng.pt", weights_only=True))
    return optimizer_state, TrainState(**json.loads((folder / "state.json").read_text()))


def load_trainable(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "trainable.safetensors")


STRATEGY_NAMES = {"ddp": "one process or DDP", "fsdp": "distributed.strategy: fsdp",
                  "deepspeed": "distributed.strategy: deepspeed (and resumes with the same --nproc)"}


def written_under(optimizer_state: dict | None) -> str:
    """Which strategy wrote a checkpoint's optimizer state: DeepSpeed keeps its own files, FSDP keys by name."""
    if optimizer_state is None:
        return "deepspeed"
    first = next((params[0] for group in optimizer_state.get("param_groups", []) if (params := group["params"])), 0)
    return "fsdp" if isinstance(first, str) else "ddp"


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
