"""--format single-file for LoRA runs: the LoRA fused into the base UNet and text encoders, written as one
original-layout checkpoint that from_single_file reads back, drawing what the base with its LoRA draws."""

import numpy as np
import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from tunesmith.config.load import build_config
from tunesmith.errors import ModelError
from tunesmith.export.diffusion_lora import export_diffusers_lora, lora_components, lora_layers, sample_image
from tunesmith.export.diffusion_run import export_diffusion_run
from tunesmith.models.diffusion import load_diffusion
from tunesmith.provenance import write_provenance

SLOW = pytest.mark.slow  # each export loads and samples pipelines; the fusing check alone stays fast
ORIGINAL_PREFIXES = ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.", "conditioner.embedders.")


def lora_run(tiny_dirs, tiny_model, lora, family, folder):
    """(a finished LoRA run folder, the base with that LoRA as adapter "default"), made without training: a random
    LoRA on the UNet and the text encoders, saved where a run saves it."""
    pipe = lora(tiny_model(family).pipeline)
    export_diffusers_lora(pipe, folder / "adapter", verify=False)
    config = build_config({"model": str(tiny_dirs[family]), "data": {"images": str(folder / "images")},
                           "method": {"name": "lora", "train_text_encoder": True}}, check_paths=False)
    write_provenance(folder, config)
    return folder, pipe


def fused_weight(module, adapter="default"):
    """W + scale * B @ A of a PEFT LoRA linear layer."""
    return (module.base_layer.weight + module.scaling[adapter] * module.lora_B[adapter].weight
            @ module.lora_A[adapter].weight).detach()


@SLOW
@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_a_lora_run_exports_one_checkpoint_with_the_lora_fused_in(tiny_dirs, tiny_model, lora, tmp_path, family):
    run_dir, pipe = lora_run(tiny_dirs, tiny_model, lora, family, tmp_path / "run")
    out = tmp_path / "fused.safetensors"

    assert export_diffusion_run(run_dir, out, "single-file") == [out]

    with safe_open(str(out), "pt") as handle:
        keys = list(handle.keys())
    assert all(key.startswith(ORIGINAL_PREFIXES) for key in keys) and not [k for k in keys if "lora" in k]
    reloaded = load_diffusion(out, config=tiny_dirs[family]).pipeline  # the tiny architecture's configs
    for component in ("unet", "text_encoder", "text_encoder_2"):
        if getattr(pipe, component, None) is None:
            continue
        trained = dict(getattr(pipe, component).named_modules())
        modules = dict(getattr(reloaded, component).named_modules())
        linear = [name for name, layer in lora_layers(getattr(pipe, component), "default").items()
                  if layer.down.ndim == 2]
        for name in linear[:3]:
            torch.testing.assert_close(modules[name].weight, fused_weight(trained[name]), msg=f"{component}.{name}")
    pipe.fuse_lora(components=lora_components(pipe))
    fused = sample_image(pipe)
    np.testing.assert_allclose(sample_image(reloaded), fused, atol=1e-4)
    assert np.abs(sample_image(tiny_model(family).pipeline) - fused).max() > 1e-2  # the LoRA matters


@SLOW
def test_a_checkpoint_that_reads_back_differently_is_refused(tiny_dirs, tiny_model, lora, tmp_path, monkeypatch):
    from tunesmith.models import diffusion_layout

    run_dir, _ = lora_run(tiny_dirs, tiny_model, lora, "sd1", tmp_path / "run")
    write = diffusion_layout.save_single_file

    def lossy(pipeline, path, family, dtype=None):  # a writer bug: one UNet tensor comes out wrong
        with torch.no_grad():
            pipeline.unet.conv_in.weight.mul_(1.5)
        write(pipeline, path, family, dtype)
        with torch.no_grad():
            pipeline.unet.conv_in.weight.div_(1.5)

    monkeypatch.setattr(diffusion_layout, "save_single_file", lossy)
    with pytest.raises(ModelError, match=r"fused.safetensors: read back with from_single_file, it draws a different "
                                         r"image than the fused pipeline \(largest pixel difference"):
        export_diffusion_run(run_dir, tmp_path / "fused.safetensors", "single-file")
    assert not (tmp_path / "fused.safetensors").exists()


def test_a_layer_left_unfused_is_caught(tiny_model, lora):
    from tunesmith.export.diffusion_single_file import _check_fused, _largest_changes

    pipe = lora(tiny_model("sd1").pipeline)
    expected = _largest_changes(pipe, lora_components(pipe))
    pipe.fuse_lora(components=["unet"])  # as if fuse_lora had skipped the text encoder
    with pytest.raises(ModelError, match=rf"run: 12 of {len(expected)} LoRA layers were not fused into the base, "
                                         r"e.g. text_encoder\.encoder\.layers\.0\.self_attn\.k_proj"):
        _check_fused(pipe, expected, "run")
    pipe.fuse_lora(components=["text_encoder"])
    pipe.unload_lora_weights()
    _check_fused(pipe, expected, "run")


@SLOW
def test_the_cli_writes_the_fused_checkpoint(tiny_dirs, tiny_model, lora, tmp_path):
    from tunesmith.cli.main import app

    run_dir, _ = lora_run(tiny_dirs, tiny_model, lora, "sd1", tmp_path / "run")
    result = CliRunner().invoke(app, ["export", str(run_dir), "--format", "single-file", "--out",
                                      str(tmp_path / "model.safetensors")])
    assert result.exit_code == 0, result.output
    assert "model.safetensors" in result.output and (tmp_path / "model.safetensors").is_file()
    refused = CliRunner().invoke(app, ["export", str(run_dir), "--format", "single-file", "--out",
                                       str(tmp_path / "model.ckpt")])
    assert "--format single-file writes one .safetensors file" in str(refused.exception)
