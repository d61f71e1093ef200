"""Checkpoints hold no pickle, verify themselves on resume and survive a full disk.

Each test writes real checkpoints of a small model's AdamW and cosine schedule with `save_checkpoint`, then damages,
plants or squeezes them the way a crash, an attacker or a full disk would.
"""

import errno
import json
import pickle
import random
import subprocess
from types import SimpleNamespace

import pytest
import torch
from safetensors import SafetensorError, safe_open
from transformers import get_scheduler

from tunesmith.errors import TunesmithError
from tunesmith.train import checkpoint as ckpt
from tunesmith.train.checkpoint import (
    CheckpointDamaged, TrainState, complete_checkpoints, latest_checkpoint, load_checkpoint, load_trainable,
    save_checkpoint, staging_folder, start_staging, written_under,
)


class Training:
    """A two-layer model with AdamW (two parameter groups) and a warm-up + cosine schedule, a few steps in."""

    def __init__(self, width: int = 8, steps: int = 3):
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.Linear(width, 2))
        weights = [p for p in self.model.parameters() if p.ndim == 2]
        biases = [p for p in self.model.parameters() if p.ndim == 1]
        self.optimizer = torch.optim.AdamW([{"params": weights, "weight_decay": 0.1},
                                            {"params": biases, "weight_decay": 0.0}], lr=1e-2)
        self.scheduler = get_scheduler("cosine", self.optimizer, 2, 20)
        for _ in range(steps):
            self.model(torch.randn(4, width)).square().mean().backward()
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad()

    def trainable(self) -> dict[str, torch.Tensor]:
        return {name: p.detach().clone() for name, p in self.model.named_parameters()}

    def save(self, run_dir, step: int, keep: int = 2, **kwargs):
        return save_checkpoint(run_dir, self.trainable(), self.optimizer.state_dict(), self.scheduler,
                               TrainState(step=step, epoch=1, batches_in_epoch=5, seen=640, elapsed=1.5),
                               keep, **kwargs)


def fresh_scheduler():
    return Training(steps=0).scheduler


def assert_same(a, b):
    """Equal nested state, with the same container and key types (int keys stay ints, tuples stay tuples)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


@pytest.fixture
def no_unpickling(monkeypatch):
    """Any attempt to unpickle while this fixture is active fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint loader tried to unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)


def test_a_checkpoint_round_trips_without_a_single_pickle(tmp_path, no_unpickling):
    training = Training()
    random.seed(7)
    torch.manual_seed(7)
    saved_optimizer, saved_scheduler = training.optimizer.state_dict(), training.scheduler.state_dict()
    folder = save_checkpoint(tmp_path, training.trainable(), saved_optimizer, training.scheduler,
                             TrainState(step=4, epoch=1), keep=2, extra_files={"config.yaml": "model: tiny\n"})
    expected_draws = (random.random(), torch.rand(3))  # what the resumed run must draw next

    # Every file is JSON, safetensors or the extra text: nothing that starts like a pickle or a torch.save zip.
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["config.yaml", "manifest.json", "optimizer.json", "optimizer.safetensors", "rng.json",
                     "rng.safetensors", "scheduler.json", "state.json", "trainable.safetensors"]
    for path in folder.iterdir():
        head = path.read_bytes()[:4]
        assert not head.startswith(b"\x80") and head != b"PK\x03\x04", path.name
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".safetensors":
            with safe_open(path, "pt") as handle:
                assert list(handle.keys())

    random.seed(0)
    torch.manual_seed(0)  # disturb the random state: loading must put it back
    scheduler = fresh_scheduler()
    optimizer_state, state = load_checkpoint(folder, scheduler)
    assert_same(optimizer_state, saved_optimizer)
    assert_same(scheduler.state_dict(), saved_scheduler)
    assert state == TrainState(step=4, epoch=1)
    assert_same(dict(sorted(load_trainable(folder).items())), dict(sorted(training.trainable().items())))
    draws = (random.random(), torch.rand(3))
    assert draws[0] == expected_draws[0] and torch.equal(draws[1], expected_draws[1])
    assert written_under(optimizer_state) == "ddp"
    assert (folder / "config.yaml").read_text() == "model: tiny\n"


def test_the_restored_optimizer_continues_exactly(tmp_path):
    straight, resumed = Training(), Training()
    folder = resumed.save(tmp_path, step=3)
    restored = Training(steps=0)
    optimizer_state, _ = load_checkpoint(folder, restored.scheduler)
    restored.optimizer.load_state_dict(optimizer_state)
    restored.model.load_state_dict(load_trainable(folder))
    for run in (straight, restored):
        torch.manual_seed(1)
        run.model(torch.randn(4, 8)).square().mean().backward()
        run.optimizer.step()
        run.scheduler.step()
    assert_same(restored.trainable(), straight.trainable())
    assert restored.scheduler.get_last_lr() == straight.scheduler.get_last_lr()


def test_fsdp_name_keyed_optimizer_state_round_trips(tmp_path):
    training = Training()
    by_position = training.optimizer.state_dict()
    names = [name for name, _ in training.model.named_parameters()]
    # What torch.distributed.checkpoint's get_optimizer_state_dict returns: state and params keyed by name.
    by_name = {"state": {names[i]: value for i, value in by_position["state"].items()},
               "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in by_position["param_groups"]]}
    folder = save_checkpoint(tmp_path, training.trainable(), by_name, training.scheduler, TrainState(step=3), keep=2)
    optimizer_state, _ = load_checkpoint(folder, fresh_scheduler())
    assert_same(optimizer_state, by_name)
    assert written_under(optimizer_state) == "fsdp"


def test_a_deepspeed_checkpoint_keeps_its_own_files_and_no_optimizer_files(tmp_path):
    training = Training()
    engine_files = start_staging(tmp_path, 3) / "deepspeed" / "zero"
    engine_files.mkdir(parents=True)
    (engine_files / "zero_pp_rank_0_mp_rank_00_optim_states.pt").write_bytes(b"DeepSpeed's own format")
    folder = save_checkpoint(tmp_path, training.trainable(), None, training.scheduler, TrainState(step=3), keep=2,
                             staged=True)
    manifest = json.loads((folder / "manifest.json").read_text())["files"]
    assert "deepspeed/zero/zero_pp_rank_0_mp_rank_00_optim_states.pt" in manifest
    assert not (folder / "optimizer.json").exists()
    optimizer_state, _ = load_checkpoint(folder, fresh_scheduler())  # DeepSpeed's .pt files are not refused
    assert optimizer_state is None and written_under(optimizer_state) == "deepspeed"


def test_cuda_random_state_is_kept_when_cuda_is_there(tmp_path, monkeypatch):
    cuda_states = [torch.arange(16, dtype=torch.uint8), torch.arange(16, 32, dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: cuda_states)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.extend)
    training = Training()
    folder = training.save(tmp_path, step=3)
    load_checkpoint(folder, fresh_scheduler())
    assert len(restored) == 2 and all(torch.equal(a, b) for a, b in zip(restored, cuda_states))


def test_the_manifest_lists_every_file_with_its_size_and_sha256(tmp_path):
    folder = Training().save(tmp_path, step=3, extra_files={"config.yaml": "seed: 0\n"})
    files = json.loads((folder / "manifest.json").read_text())["files"]
    assert sorted(files) == sorted(p.name for p in folder.iterdir() if p.name != "manifest.json")
    for name, record in files.items():
        assert record["bytes"] == (folder / name).stat().st_size
        assert record["sha256"] == ckpt._sha256(folder / name)


def test_resuming_reads_each_file_once_to_verify_it(tmp_path, monkeypatch):
    folder = Training().save(tmp_path, step=3)
    hashed = []
    real_sha256 = ckpt._sha256
    monkeypatch.setattr(ckpt, "_sha256", lambda path: hashed.append(path.name) or real_sha256(path))
    assert latest_checkpoint(tmp_path, print) == folder
    load_checkpoint(folder, fresh_scheduler())
    assert sorted(hashed) == sorted(json.loads((folder / "manifest.json").read_text())["files"])


# -- damaged and partial checkpoints -----------------------------------------------------------------------------
def two_checkpoints(tmp_path):
    training = Training()
    return training.save(tmp_path, step=3), training.save(tmp_path, step=6)


DAMAGE = {
    "truncated": lambda f: f.write_bytes(f.read_bytes()[: f.stat().st_size // 2]),
    "header overwritten": lambda f: f.write_bytes(b"\xff" * 8 + f.read_bytes()[8:]),
    "deleted": lambda f: f.unlink(),
}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("name", ["trainable.safetensors", "optimizer.safetensors", "rng.json", "state.json"])
def test_a_damaged_checkpoint_is_skipped_for_the_previous_one(tmp_path, damage, name):
    previous, latest = two_checkpoints(tmp_path)
    DAMAGE[damage](latest / name)
    said = []
    assert latest_checkpoint(tmp_path, said.append) == previous
    assert len(said) == 1
    assert said[0].startswith(f"--resume: skipping {latest}: {name} ")
    assert said[0].endswith("; trying the checkpoint before it")
    with pytest.raises(CheckpointDamaged, match=f"^{latest}: {name} "):
        load_checkpoint(latest, fresh_scheduler())


def test_the_damage_is_named_in_one_sentence(tmp_path):
    _, latest = two_checkpoints(tmp_path)
    size = (latest / "trainable.safetensors").stat().st_size
    DAMAGE["truncated"](latest / "trainable.safetensors")
    with pytest.raises(CheckpointDamaged) as info:
        load_checkpoint(latest, fresh_scheduler())
    assert str(info.value) == f"{latest}: trainable.safetensors has {size // 2:,} bytes, {size:,} when it was saved"
    (latest / "manifest.json").unlink()
    with pytest.raises(CheckpointDamaged) as info:
        load_checkpoint(latest, fresh_scheduler())
    assert str(info.value) == f"{latest}: it has no manifest.json (it was not completely written)"


def test_no_verified_checkpoint_means_none(tmp_path):
    for folder in two_checkpoints(tmp_path):
        (folder / "manifest.json").write_text("{not json")
    said = []
    assert latest_checkpoint(tmp_path, said.append) is None
    assert len(said) == 2 and all("manifest.json is not readable" in line for line in said)
    assert latest_checkpoint(tmp_path / "never-ran", said.append) is None


def test_partial_checkpoints_are_removed_on_resume(tmp_path):
    previous, _ = two_checkpoints(tmp_path)
    partial = start_staging(tmp_path, 9)
    (partial / "trainable.safetensors").write_bytes(b"half")
    interrupted_delete = tmp_path / "checkpoints" / ".tmp-old-step-0000001"
    interrupted_delete.mkdir()
    said = []
    assert latest_checkpoint(tmp_path, said.append).name == "step-0000006"
    assert not partial.exists() and not interrupted_delete.exists()
    assert said == [f"--resume: removing {interrupted_delete}, a checkpoint interrupted while it was written",
                    f"--resume: removing {partial}, a checkpoint interrupted while it was written"]
    assert previous.is_dir()


def test_only_the_newest_are_kept_and_stale_newer_ones_go(tmp_path):
    training = Training()
    for step in (2, 4, 6, 8):
        training.save(tmp_path, step=step, keep=2)
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step-0000006", "step-0000008"]
    # step-8 was damaged, the run resumed from step 6 and saves step 7: step 8 is from the abandoned future.
    training.save(tmp_path, step=7, keep=2)
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step-0000006", "step-0000007"]
    # Saving the same step again replaces it whole.
    again = training.save(tmp_path, step=7, keep=2, extra_files={"note.txt": "second"})
    assert (again / "note.txt").read_text() == "second"
    assert latest_checkpoint(tmp_path, print) == again
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


# -- pickles planted or left by an older version -------------------------------------------------------------------
class Payload:
    """Unpickling this writes `canary`: the file exists only if some loader ran the payload."""

    def __init__(self, canary):
        self.canary = str(canary)

    def __reduce__(self):
        return (exec, (f"open({self.canary!r}, 'w').write('the payload ran')",))


@pytest.mark.parametrize("name", ["optimizer.pt", "scheduler.pt", "rng.pt"])
def test_a_planted_pickle_is_refused_and_never_unpickled(tmp_path, name, no_unpickling):
    folder = Training().save(tmp_path, step=3)
    canary = tmp_path / "canary"
    (folder / name).write_bytes(pickle.dumps(Payload(canary)))
    with pytest.raises(TunesmithError) as info:
        latest_checkpoint(tmp_path, print)
    assert str(info.value) == (
        f"--resume: {folder} holds pickle files ({name}), which can run code when loaded and which tunesmith "
        "checkpoints never contain (an older tunesmith wrote them, or they were planted); it is not read: delete "
        "that folder to resume from an earlier checkpoint, or start over with --overwrite"
    )
    with pytest.raises(TunesmithError, match="holds pickle files"):
        load_checkpoint(folder, fresh_scheduler())
    assert not canary.exists()


def test_a_checkpoint_written_by_an_older_version_is_refused(tmp_path):
    old = tmp_path / "checkpoints" / "step-0000004"
    old.mkdir(parents=True)
    for name in ("optimizer.pt", "scheduler.pt", "rng.pt"):
        torch.save({"x": torch.zeros(1)}, old / name)
    (old / "state.json").write_text(json.dumps({"step": 4}))
    with pytest.raises(TunesmithError, match=r"holds pickle files \(optimizer.pt, rng.pt, scheduler.pt\)"):
        latest_checkpoint(tmp_path, print)


def test_a_file_replaced_by_a_pickle_payload_is_damage_not_code(tmp_path, no_unpickling):
    previous, latest = two_checkpoints(tmp_path)
    canary = tmp_path / "canary"
    (latest / "scheduler.json").write_bytes(pickle.dumps(Payload(canary)))
    said = []
    assert latest_checkpoint(tmp_path, said.append) == previous
    assert "scheduler.json has" in said[0] or "scheduler.json changed" in said[0]
    assert not canary.exists()


# -- disk full ---------------------------------------------------------------------------------------------------
def assert_untouched(tmp_path, previous):
    assert [p.name for p in complete_checkpoints(tmp_path)] == [previous.name]
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))
    assert latest_checkpoint(tmp_path, print) == previous  # still verifies


def test_too_little_free_space_is_refused_before_writing(tmp_path, monkeypatch):
    previous = Training().save(tmp_path, step=3)
    monkeypatch.setattr(ckpt.shutil, "disk_usage", lambda path: SimpleNamespace(free=5 * 2**20))
    with pytest.raises(TunesmithError) as info:
        Training(width=1024).save(tmp_path, step=6)  # 1024x1024 fp32 weights and two AdamW moments: 12 MiB
    assert str(info.value) == (
        f"not enough disk space to save checkpoint {tmp_path / 'checkpoints' / 'step-0000006'}: it needs about "
        "13.7 MiB and 5.0 MiB is free; step-0000003 is still the latest checkpoint; free some space (or set "
        "output_dir to a larger disk) and continue with --resume"
    )
    assert_untouched(tmp_path, previous)


@pytest.mark.parametrize("failing", ["save_file", "_write_text"])
def test_a_disk_that_fills_up_while_writing_leaves_the_previous_checkpoint(tmp_path, monkeypatch, failing):
    previous = Training().save(tmp_path, step=3)
    real_save_file, real_write_text = ckpt.save_file, ckpt._write_text

    def save_file_then_fail(tensors, path):
        real_save_file(tensors, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        # What safetensors raises: the OS error only in its message.
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    def write_text_then_fail(path, text):
        real_write_text(path, text[: len(text) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, failing, {"save_file": save_file_then_fail, "_write_text": write_text_then_fail}[failing])
    with pytest.raises(TunesmithError, match=r"^not enough disk space to save checkpoint .*step-0000006: it needs "
                                             r"about [\d.]+ MiB and [\d,.]+ [MG]iB is free; step-0000003 is still"):
        Training().save(tmp_path, step=6)
    assert_untouched(tmp_path, previous)


def test_other_write_errors_are_not_called_a_full_disk(tmp_path, monkeypatch):
    def fail(*args):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(ckpt, "_write_text", fail)
    with pytest.raises(PermissionError):
        Training().save(tmp_path, step=3)
    assert not staging_folder(tmp_path, 3).exists()


@pytest.fixture
def small_disk(tmp_path):
    """A real 3 MiB file system (tmpfs), where mounting is permitted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()}); the ENOSPC tests above "
                    "simulate it")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_full_tmpfs_keeps_the_previous_checkpoint(small_disk, monkeypatch):
    previous = Training().save(small_disk, step=3)  # a few KiB
    big = Training(width=600)  # 600x600 fp32 weights and two AdamW moments: 4.1 MiB
    with pytest.raises(TunesmithError, match=r"^not enough disk space .* is free; step-0000003 is still the latest"):
        big.save(small_disk, step=6)
    assert_untouched(small_disk, previous)

    # The check passes (the free space is misreported), so the write itself runs out of space on the real disk.
    monkeypatch.setattr(ckpt, "_check_space", lambda *args: None)
    with pytest.raises(TunesmithError, match=r"^not enough disk space .* is free; step-0000003 is still the latest"):
        big.save(small_disk, step=6)
    assert_untouched(small_disk, previous)
