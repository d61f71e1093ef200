"""Checkpoints that survive a crash, a full disk and a hostile file.

A checkpoint holds only what training changes (trainable tensors, optimizer, scheduler, random state, position),
so LoRA checkpoints stay small; the frozen base is reloaded from the model source on resume. It holds no pickle:
tensors are in .safetensors files and everything else in JSON (`optimizer.json` names the tensors of
`optimizer.safetensors`), so reading a checkpoint never runs code.

Writing goes to `.tmp-step-N`: every file is flushed to disk, then `manifest.json` (size and sha256 of each file)
is written last, then one rename makes it `step-N`. A crash at any moment leaves the complete folder or a `.tmp-`
one, which resuming removes. Free space is checked before writing; a disk that fills up anyway removes the staging
folder, so the previous checkpoint stays the latest. Resuming verifies the manifest and falls back to the previous
checkpoint when a file was damaged later.

Under FSDP the tensors are gathered whole (train/fsdp.py) and the optimizer state is keyed by parameter name instead
of position; under DeepSpeed a `deepspeed/` folder with its per-rank optimizer partitions (DeepSpeed's own format,
read by DeepSpeed) replaces the optimizer files.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import re
import shutil
from dataclasses import asdict, dataclass
from functools import singledispatch
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tunesmith.errors import TunesmithError
from tunesmith.models.load import PICKLE_SUFFIXES
from tunesmith.train.deepspeed_zero import ENGINE_DIR

PREFIX = "step-"
STAGING = ".tmp-"  # being written, replaced or deleted: never resumed from, removed by latest_checkpoint
MANIFEST = "manifest.json"
TRAINABLE = "trainable.safetensors"
STATE = "state.json"
# Each part is <name>.json, with <name>.safetensors when it holds tensors.
OPTIMIZER, SCHEDULER, RNG = "optimizer", "scheduler", "rng"
COMPANION = "companion-"  # + name: the state of what trains beside the weights (e.g. a weight average)
REQUIRED = (TRAINABLE, f"{SCHEDULER}.json", f"{RNG}.json", STATE)
FORMAT = 1
# Room for safetensors headers and file-system blocks on top of the bytes counted, and for whatever else writes.
SPACE_MARGIN, SPACE_SLACK = 1.05, 1 << 20
OUT_OF_SPACE = {errno.ENOSPC, errno.EDQUOT}
STEP_NAME = re.compile(rf"{PREFIX}(\d+)$")
# (folder, manifest mtime) whose contents matched their sha256: resuming (latest_checkpoint, then load_checkpoint)
# reads a large checkpoint's bytes once to verify them, not twice.
_VERIFIED: set[tuple[str, int]] = set()


class CheckpointDamaged(TunesmithError):
    """A checkpoint whose files do not match its manifest: truncated, overwritten, or never finished."""


@dataclass
class TrainState:
    step: int = 0  # optimizer steps done
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of `epoch` already consumed
    seen: int = 0  # what the task's throughput counts (tokens, images), trained on so far
    elapsed: float = 0.0
    micro_batches: int = 1  # pieces each drawn batch is cut into (batch_size: auto raises it on out-of-memory)


def staging_folder(run_dir: Path, step: int) -> Path:
    """Where a checkpoint is written before it is complete (renamed to `step-N` when it is)."""
    return run_dir / "checkpoints" / f"{STAGING}{PREFIX}{step:07d}"


def start_staging(run_dir: Path, step: int) -> Path:
    tmp = staging_folder(run_dir, step)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def save_checkpoint(run_dir: Path, trainable: dict[str, torch.Tensor], optimizer_state: dict | None, scheduler,
                    state: TrainState, keep: int, staged: bool = False,
                    extra_files: dict[str, str] | None = None, companions: dict[str, dict] | None = None) -> Path:
    """`trainable`: the trainable tensors by name (methods.parameters.trainable_state); `optimizer_state`: a
    state_dict, or None when the optimizer wrote its own files into the staging folder first (`staged`, DeepSpeed);
    `extra_files`: text files (name -> content) to keep in the checkpoint, e.g. its config.yaml; `companions`: the
    state_dict of each companion by name (read back with `load_companion`), under the manifest like the rest.

    Raises TunesmithError, naming the folder and the space needed, when the disk is too full; the staging folder is
    then removed and the previous checkpoint stays the latest."""
    final = run_dir / "checkpoints" / f"{PREFIX}{state.step:07d}"
    tmp = staging_folder(run_dir, state.step)
    parts = {SCHEDULER: scheduler.state_dict(), RNG: rng_state()}
    if optimizer_state is not None:
        parts[OPTIMIZER] = optimizer_state
    parts.update({f"{COMPANION}{name}": tree for name, tree in (companions or {}).items()})
    tensor_files, texts = {TRAINABLE: trainable}, {**(extra_files or {}), STATE: json.dumps(asdict(state))}
    for name, tree in parts.items():
        tensors: dict[str, torch.Tensor] = {}
        texts[f"{name}.json"] = json.dumps(_split(tree, tensors))
        if tensors:
            tensor_files[f"{name}.safetensors"] = tensors
    needed = _bytes_needed(tensor_files, texts)
    try:
        if not staged:
            start_staging(run_dir, state.step)
        _check_space(run_dir, final, needed)
        for name, tensors in tensor_files.items():
            save_file(tensors, tmp / name)
        for name, text in texts.items():
            _write_text(tmp / name, text)
        _write_manifest(tmp)
    except (OSError, SafetensorError, TunesmithError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)  # leave no partial folder behind, however the write failed
        if errno_of(exc) in OUT_OF_SPACE:
            raise _out_of_space(run_dir, final, needed) from None
        raise
    _publish(tmp, final)
    _prune(run_dir, final, keep)
    return final


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """The `step-N` folders, oldest first. Each was renamed there once complete; `latest_checkpoint` verifies them."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if STEP_NAME.match(p.name) and p.is_dir()), key=_step_of)


def latest_checkpoint(run_dir: Path, say: Callable[[str], None]) -> Path | None:
    """The newest checkpoint that verifies, for --resume, or None when there is none (the run starts over).

    Partial checkpoints (`.tmp-*`, left by a crash while writing) are removed and damaged ones skipped, each with a
    message through `say`; a checkpoint holding a pickle file is refused (TunesmithError)."""
    root = run_dir / "checkpoints"
    for partial in sorted(root.glob(f"{STAGING}*")) if root.is_dir() else []:
        say(f"--resume: removing {partial}, a checkpoint interrupted while it was written")
        shutil.rmtree(partial, ignore_errors=True)
    for folder in reversed(complete_checkpoints(run_dir)):
        try:
            verify_checkpoint(folder)
            return folder
        except CheckpointDamaged as damaged:
            say(f"--resume: skipping {damaged}; trying the checkpoint before it")
    return None


def verify_checkpoint(folder: Path) -> None:
    """Refuse a checkpoint holding a pickle (TunesmithError); raise CheckpointDamaged unless every file matches the
    manifest. DeepSpeed's own files in `deepspeed/` are checked against the manifest like the others."""
    pickles = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*")
                     if path.suffix in PICKLE_SUFFIXES and path.relative_to(folder).parts[0] != ENGINE_DIR)
    if pickles:
        raise TunesmithError(
            f"--resume: {folder} holds pickle files ({', '.join(pickles)}), which can run code when loaded and which "
            "tunesmith checkpoints never contain (an older tunesmith wrote them, or they were planted); it is not "
            "read: delete that folder to resume from an earlier checkpoint, or start over with --overwrite"
        )
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
        records = {name: (int(record["bytes"]), str(record["sha256"])) for name, record in files.items()}
    except FileNotFoundError:
        raise CheckpointDamaged(f"{folder}: it has no {MANIFEST} (it was not completely written)") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CheckpointDamaged(f"{folder}: its {MANIFEST} is not readable") from None
    for name in REQUIRED:
        if name not in records:
            raise CheckpointDamaged(f"{folder}: its {MANIFEST} does not list {name}")
    verified = (str(folder), (folder / MANIFEST).stat().st_mtime_ns)
    for name, (size, digest) in records.items():
        path = folder / name
        if Path(name).is_absolute() or ".." in Path(name).parts or not path.is_file():
            raise CheckpointDamaged(f"{folder}: {name} is missing")
        if path.stat().st_size != size:
            raise CheckpointDamaged(f"{folder}: {name} has {path.stat().st_size:,} bytes, {size:,} when it was saved")
        if verified not in _VERIFIED and _sha256(path) != digest:
            raise CheckpointDamaged(f"{folder}: {name} changed after it was saved (its sha256 differs)")
    _VERIFIED.add(verified)


def load_checkpoint(folder: Path, scheduler) -> tuple[dict | None, TrainState]:
    """Restore the scheduler and the random state; return (optimizer state, or None if the optimizer saved its own
    files; position). The trained tensors are read with `load_trainable` by strategies that need them."""
    verify_checkpoint(folder)
    optimizer_state = _read_part(folder, OPTIMIZER) if (folder / f"{OPTIMIZER}.json").is_file() else None
    scheduler.load_state_dict(_read_part(folder, SCHEDULER))
    set_rng_state(_read_part(folder, RNG))
    return optimizer_state, _train_state(json.loads((folder / STATE).read_text()))


def load_companion(folder: Path, name: str):
    """The state a companion saved in this (verified) checkpoint, or None when it was saved without one."""
    return _read_part(folder, f"{COMPANION}{name}") if (folder / f"{COMPANION}{name}.json").is_file() else None


def load_trainable(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / TRAINABLE)


STRATEGY_NAMES = {"ddp": "one process or DDP", "fsdp": "distributed.strategy: fsdp",
                  "deepspeed": "distributed.strategy: deepspeed (and resumes with the same --nproc)"}


def written_under(optimizer_state: dict | None) -> str:
    """Which strategy wrote a checkpoint's optimizer state: DeepSpeed keeps its own files, FSDP keys by name."""
    if optimizer_state is None:
        return "deepspeed"
    first = next((params[0] for group in optimizer_state.get("param_groups", []) if (params := group["params"])), 0)
    return "fsdp" if isinstance(first, str) else "ddp"


# -- writing ---------------------------------------------------------------------------------------------------
def _bytes_needed(tensor_files: dict[str, dict[str, torch.Tensor]], texts: dict[str, str]) -> int:
    counted = sum(t.numel() * t.element_size() for tensors in tensor_files.values() for t in tensors.values())
    counted += sum(len(text.encode()) for text in texts.values())
    return int(counted * SPACE_MARGIN) + SPACE_SLACK


def _check_space(run_dir: Path, final: Path, needed: int) -> None:
    if shutil.disk_usage(final.parent).free < needed:
        raise _out_of_space(run_dir, final, needed)


def _out_of_space(run_dir: Path, final: Path, needed: int) -> TunesmithError:
    free = shutil.disk_usage(final.parent).free
    previous = [c for c in complete_checkpoints(run_dir) if c != final]
    kept = f"{previous[-1].name} is still the latest checkpoint" if previous else "no earlier checkpoint exists"
    return TunesmithError(
        f"not enough disk space to save checkpoint {final}: it needs about {size_text(needed)} and {size_text(free)} "
        f"is free; {kept}; free some space (or set output_dir to a larger disk) and continue with --resume"
    )


def errno_of(exc: Exception) -> int | None:
    """The OS error number behind a failed write; safetensors names it only in its message ('... (os error 28)')."""
    if isinstance(exc, OSError):
        return exc.errno
    found = re.search(r"\(os error (\d+)\)", str(exc))
    return int(found.group(1)) if found else None


def size_text(n: int) -> str:
    return f"{n / 2**30:,.2f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _write_manifest(folder: Path) -> None:
    """Every file flushed to disk and fingerprinted, then the manifest, last: a folder with a manifest is complete."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    listed = {p.relative_to(folder).as_posix(): _flush_and_fingerprint(p) for p in files}
    manifest = folder / MANIFEST
    _write_text(manifest, json.dumps({"format": FORMAT, "files": listed}, indent=1))
    _flush_and_fingerprint(manifest)
    for directory in {folder, *(p.parent for p in files)}:
        _sync(directory)


def _flush_and_fingerprint(path: Path) -> dict:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
    return {"bytes": path.stat().st_size, "sha256": _sha256(path)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _sync(directory: Path) -> None:
    """Make renames and new entries in `directory` survive a power cut, not only a crash."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: Path, final: Path) -> None:
    """Rename the complete staging folder to its final name; an older folder of the same step is swapped out first."""
    replaced = final.with_name(f"{STAGING}replaced-{final.name}")
    if final.exists():  # the same step saved again, after resuming from an earlier checkpoint
        shutil.rmtree(replaced, ignore_errors=True)
        final.rename(replaced)
    tmp.rename(final)
    _sync(final.parent)
    shutil.rmtree(replaced, ignore_errors=True)


def _prune(run_dir: Path, final: Path, keep: int) -> None:
    """Keep the newest `keep` checkpoints up to `final`. Newer ones are left from before a resume that skipped
    them as damaged; training has redone their steps."""
    others = [c for c in complete_checkpoints(run_dir) if c != final]
    older = [c for c in others if _step_of(c) < _step_of(final)]
    stale = [c for c in others if _step_of(c) > _step_of(final)]
    for folder in stale + older[: max(0, len(older) - keep + 1)]:
        _remove(folder)


def _remove(folder: Path) -> None:
    """Out of the checkpoint names in one rename, then deleted: a crash while deleting leaves a `.tmp-` folder."""
    doomed = folder.with_name(f"{STAGING}old-{folder.name}")
    shutil.rmtree(doomed, ignore_errors=True)
    folder.rename(doomed)
    shutil.rmtree(doomed)


def _step_of(folder: Path) -> int:
    return int(STEP_NAME.match(folder.name).group(1))


# -- nested state as JSON + tensors ----------------------------------------------------------------------------
# Markers for what JSON cannot say itself: a tensor (by its key in the .safetensors file), a tuple, and a dict whose
# keys are not plain strings (optimizer state is keyed by parameter position).
TENSOR, TUPLE, ITEMS = "__tensor__", "__tuple__", "__items__"


@singledispatch
def _split(value, tensors: dict[str, torch.Tensor]):
    """`value` as JSON-ready data; each tensor is moved to `tensors` and replaced by a reference to its key."""
    raise TypeError(f"a checkpoint cannot hold a {type(value).__name__}")


@_split.register(type(None))
@_split.register(str)
@_split.register(int)  # and bool
@_split.register(float)
def _(value, tensors):
    return value


@_split.register
def _(value: torch.Tensor, tensors):
    key = str(len(tensors))
    tensors[key] = value.detach().contiguous()
    return {TENSOR: key}


@_split.register
def _(value: list, tensors):
    return [_split(v, tensors) for v in value]


@_split.register
def _(value: tuple, tensors):
    return {TUPLE: [_split(v, tensors) for v in value]}


@_split.register
def _(value: dict, tensors):
    if all(isinstance(k, str) and not k.startswith("__") for k in value):
        return {k: _split(v, tensors) for k, v in value.items()}
    return {ITEMS: [[_split(k, tensors), _split(v, tensors)] for k, v in value.items()]}


def _join(value, tensors: dict[str, torch.Tensor]):
    """The inverse of `_split`."""
    if isinstance(value, list):
        return [_join(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and (marker := next(iter(value))) in _MARKED:
        return _MARKED[marker](value[marker], tensors)
    return {k: _join(v, tensors) for k, v in value.items()}


_MARKED = {
    TENSOR: lambda key, tensors: tensors[key],
    TUPLE: lambda items, tensors: tuple(_join(v, tensors) for v in items),
    ITEMS: lambda pairs, tensors: {_join(k, tensors): _join(v, tensors) for k, v in pairs},
}


def _read_part(folder: Path, name: str):
    tensor_file = folder / f"{name}.safetensors"
    tensors = load_file(tensor_file) if tensor_file.is_file() else {}
    return _join(json.loads((folder / f"{name}.json").read_text()), tensors)


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _train_state(saved: dict) -> TrainState:
    if "tokens_seen" in saved:  # written before tasks counted their own units
        saved["seen"] = saved.pop("tokens_seen")
    return TrainState(**saved)
