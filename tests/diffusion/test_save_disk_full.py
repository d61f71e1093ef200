"""A full disk while a diffusion run saves its result or is exported (tasks/diffusion/trained.py save_trained,
export/kohya.py, export/staged.py): one TunesmithError naming the result and the space, nothing half written under
the final name, an older result left as it was. The real 16 MiB disk is tests/integration/test_diffusion_faults.py's;
here safetensors fails as it does on one (after part of the file) and the free-space check is shown a full disk."""

import shutil
from types import SimpleNamespace

import pytest
import safetensors.torch
from safetensors import SafetensorError

from tunesmith.config.load import build_config
from tunesmith.errors import TunesmithError
from tunesmith.export.staged import staged
from tunesmith.methods import registry
from tunesmith.tasks.diffusion.trained import save_trained

NO_SPACE = "Error while serializing: I/O error: No space left on device (os error 28)"  # as safetensors says it


def run_folder(tmp_path, model_dir, method: str):
    """(config, run folder with checkpoint 4, as a run has when it saves its result)."""
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints" / "step-0000004").mkdir(parents=True)
    config = build_config({"model": str(model_dir), "data": {"images": str(tmp_path / "images"),
                                                              "instance_prompt": "a photo of sks dog"},
                           "method": {"name": method}, "output_dir": str(run_dir)}, check_paths=False)
    return config, run_dir


@pytest.fixture
def disk_fills_up(monkeypatch):
    """Every safetensors write stops half way with safetensors' own out-of-space error."""
    real = safetensors.torch.save_file

    def half_then_full(tensors, filename, *args, **kwargs):
        real(tensors, filename, *args, **kwargs)
        with open(filename, "r+b") as handle:
            handle.truncate(handle.seek(0, 2) // 2)
        raise SafetensorError(NO_SPACE)

    monkeypatch.setattr(safetensors.torch, "save_file", half_then_full)


def free_space(monkeypatch, free: int) -> None:
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(**{**real(path)._asdict(), "free": free}))


def test_a_lora_save_that_runs_out_of_space_keeps_the_older_adapter(tiny_model, lora, tiny_sd_dir, tmp_path,
                                                                    disk_fills_up):
    config, run_dir = run_folder(tmp_path, tiny_sd_dir, "lora")
    older = run_dir / "adapter" / "pytorch_lora_weights.safetensors"  # saved before a resume trained further
    older.parent.mkdir()
    older.write_bytes(b"the older adapter")
    model = tiny_model("sd1")
    lora(model.pipeline)

    with pytest.raises(TunesmithError) as raised:
        save_trained(model, registry.of(config.method), config, run_dir)

    message = str(raised.value)
    assert message.startswith(f"not enough disk space to save {run_dir / 'adapter'}: it needs about ")
    assert message.endswith(" is free; the last checkpoint step-0000004 is intact; free some space and continue "
                            "with --resume")
    assert older.read_bytes() == b"the older adapter" and sorted(p.name for p in run_dir.iterdir()) == [
        "adapter", "checkpoints"]  # no staging folder left


def test_a_full_model_too_large_for_the_disk_is_refused_before_writing(tiny_model, tiny_sd_dir, tmp_path,
                                                                       monkeypatch):
    config, run_dir = run_folder(tmp_path, tiny_sd_dir, "dreambooth")
    free_space(monkeypatch, 1 << 20)

    with pytest.raises(TunesmithError, match=rf"^not enough disk space to save {run_dir / 'model'}: it needs about "
                                             r"\d+\.\d MiB and 1\.0 MiB is free; the last checkpoint step-0000004"):
        save_trained(tiny_model("sd1"), registry.of(config.method), config, run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoints"]

    monkeypatch.undo()
    folder = save_trained(tiny_model("sd1"), registry.of(config.method), config, run_dir)
    assert folder == run_dir / "model"
    assert (folder / "model_index.json").is_file() and (folder / "config.yaml").is_file()  # the run's provenance
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoints", "model", "model.safetensors"]


def test_a_kohya_export_onto_a_full_disk_leaves_no_file(tiny_model, lora, tmp_path, disk_fills_up):
    from tunesmith.export.kohya import export_kohya

    out = tmp_path / "out" / "dog.safetensors"
    with pytest.raises(TunesmithError, match=rf"^not enough disk space to write {out}: it needs about [\d.]+ MiB and "
                                             r"[\d,.]+ [MG]iB is free; free some space, or choose an --out on a "
                                             r"larger disk$"):
        export_kohya(lora(tiny_model("sd1").pipeline), out, "sd1")
    assert list(out.parent.iterdir()) == []


def test_a_staged_folder_replaces_the_older_one_only_when_complete(tmp_path):
    final = tmp_path / "adapter"
    final.mkdir()
    (final / "old.txt").write_text("older")

    with pytest.raises(ValueError, match="a writer bug"), staged(final, 10, "save", "") as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("half")
        raise ValueError("a writer bug")  # not about space: passed on as it is
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"] and (final / "old.txt").is_file()

    with staged(final, 10, "save", "") as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("complete")
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]
    assert [p.name for p in final.iterdir()] == ["new.txt"]
