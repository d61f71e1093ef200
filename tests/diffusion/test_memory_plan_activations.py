"""Measured activations in the diffusion memory plan: they scale with the images and batch of the run, gradient
checkpointing cuts them, `auto` turns it on only when the plan would not fit, and a run that cannot fit even then is
refused before training (the device memory is faked, as the language-model plan tests fake it)."""

import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from tunesmith import events as ev
from tunesmith.config.load import build_config
from tunesmith.config.training import TrainingConfig
from tunesmith.data.images.dataset import ImageDataset
from tunesmith.data.images.folder import read_image_folder
from tunesmith.data.images.settings import ImageSettings
from tunesmith.errors import TunesmithError
from tunesmith.methods import memory, registry
from tunesmith.run import run
from tunesmith.tasks.diffusion.activation_memory import plan_activations, probe_batch, saved_bytes
from tunesmith.tasks.diffusion.run import gradient_checkpointing
from tunesmith.tasks.diffusion.task import DiffusionTask

MIB = 1024**2
PROMPT = "a photo of sks dog"


def images(folder, n=2, side=64):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def lora_task(tiny_model, folder, resolution):
    options = build_config({"model": "tunesmith-tiny-sd", "data": {"images": str(folder)},
                            "method": {"name": "lora"}}).method
    torch.manual_seed(0)
    model = registry.of(options).apply(tiny_model("sd1"), options, None)
    settings = ImageSettings(resolution=resolution, bucket_step=8, min_bucket_side=16, min_size=16)
    records, _ = read_image_folder(folder, settings, default_caption=PROMPT)
    return DiffusionTask(model, ImageDataset(records, settings))


def test_auto_checkpoints_only_when_the_measured_activations_would_not_fit(tiny_model, tmp_path, isolated_cache):
    task = lora_task(tiny_model, images(tmp_path / "images", side=32), 32)
    cfg = TrainingConfig(batch_size=2)
    fixed = memory.estimate(task.model).total
    enable = lambda: gradient_checkpointing(True, task.pipeline)  # noqa: E731

    task.model.eval()
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    roomy = plan_activations("auto", task, cfg, fixed, 100 * 1024 * MIB, enable)
    assert torch.equal(torch.rand(3), expected) and not task.model.training  # the probe leaves both alone
    assert not roomy.checkpointing and roomy.reason == "auto: fits without it"
    assert (roomy.examples, roomy.smallest, roomy.resolution) == (2, 2, 32) and roomy.total == 2 * roomy.per_example
    assert not task.pipeline.unet.is_gradient_checkpointing

    tight = plan_activations("auto", task, cfg, fixed, int((fixed + 0.9 * roomy.total) / memory.HEADROOM), enable)
    assert tight.checkpointing and tight.reason == "auto: activations would not fit without it"
    assert task.pipeline.unet.is_gradient_checkpointing and tight.per_example < 0.7 * roomy.per_example
    auto_batch = TrainingConfig(batch_size="auto")
    assert plan_activations(True, task, auto_batch, fixed, 0, enable).smallest == 1  # it can fall back to 1


@pytest.mark.slow
def test_activations_scale_with_the_pixels_and_the_batch(tiny_model, tmp_path, isolated_cache):
    folder = images(tmp_path / "images")
    small, large = lora_task(tiny_model, folder, 32), lora_task(tiny_model, folder, 64)
    cfg = TrainingConfig(batch_size=2)
    one = saved_bytes(large.loss_module(), probe_batch(large, cfg))
    assert 3.5 < one / saved_bytes(small.loss_module(), probe_batch(small, cfg)) < 4.5  # 4x the pixels
    _, collator = large.train_batches(cfg)
    two = saved_bytes(large.loss_module(), collator([large.train_set[0], large.train_set[1]]))
    assert two == pytest.approx(2 * one, rel=0.02)  # what the plan assumes: per example, linearly


def run_at(model_dir, root, name, available, monkeypatch, seen=None):
    """The events of a one-step LoRA run at 64 px on a device with `available` bytes."""
    monkeypatch.setattr(memory, "device_memory", lambda device: available)
    config = build_config({
        "model": str(model_dir), "output_dir": str(root / name),
        "data": {"images": str(root / "images"), "instance_prompt": PROMPT, "resolution": 64, "bucket_step": 8,
                 "min_bucket_side": 16, "min_size": 16},
        "method": {"name": "lora"}, "validation": {"prompts": [PROMPT], "n": 1, "steps": 1},
        "training": {"max_steps": 1, "batch_size": 2, "precision": "fp32", "gradient_checkpointing": "auto"},
    })
    seen = [] if seen is None else seen
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(config, on_event=seen.append)
    return seen


def plan_of(seen) -> dict:
    return next(e.plan for e in seen if isinstance(e, ev.Planned))


@pytest.mark.slow
def test_a_run_checkpoints_when_it_must_and_is_refused_when_even_that_does_not_fit(tiny_sd_dir, tmp_path,
                                                                                  monkeypatch, isolated_cache):
    images(tmp_path / "images")
    roomy = plan_of(run_at(tiny_sd_dir, tmp_path, "roomy", 100 * 1024 * MIB, monkeypatch))
    fixed, plain = roomy["memory_gib"] * memory.GIB, roomy["activations_gib"] * memory.GIB
    assert not roomy["gradient_checkpointing"] and plain > fixed  # at 64 px the activations dominate

    between = int((fixed + 0.6 * plain) / memory.HEADROOM)
    tight_events = run_at(tiny_sd_dir, tmp_path, "tight", between, monkeypatch)
    tight = plan_of(tight_events)
    assert tight["gradient_checkpointing"] and tight["activations_gib"] < 0.5 * roomy["activations_gib"]
    assert any(isinstance(e, ev.RunFinished) for e in tight_events)

    too_small = int((fixed + 0.5 * tight["activations_gib"] * memory.GIB) / memory.HEADROOM)
    seen = []
    with pytest.raises(TunesmithError) as raised:
        run_at(tiny_sd_dir, tmp_path, "refused", too_small, monkeypatch, seen)
    message = str(raised.value)
    assert message.startswith("lora needs ~0.0 GiB: weights, gradients and optimizer state 0.0 + activations 0.0 "
                              "(2 examples at 64 px, with gradient checkpointing); this machine has 0.0 GiB")
    assert re.search(r"try training\.batch_size: 1 with more gradient_accumulation \(the same step; activations "
                     r"~0\.\d\d GiB\) or a data\.resolution below 64$", message), message
    assert plan_of(seen)["gradient_checkpointing"]  # the plan is said first, then the run stops before training
    assert not [e for e in seen if isinstance(e, ev.TrainingStarted)]
