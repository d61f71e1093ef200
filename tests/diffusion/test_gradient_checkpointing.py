"""training.gradient_checkpointing: true recomputes activations without changing the loss or the gradients."""

import numpy as np
import pytest
import torch
from PIL import Image

from tunesmith.config.load import build_config
from tunesmith.data.images.dataset import ImageDataset
from tunesmith.data.images.folder import read_image_folder
from tunesmith.data.images.settings import ImageSettings
from tunesmith.methods import registry
from tunesmith.tasks.diffusion.run import gradient_checkpointing
from tunesmith.tasks.diffusion.task import DiffusionTask


@pytest.mark.slow
def test_checkpointed_unet_and_text_encoder_give_the_same_loss_and_gradients(tiny_model, tmp_path, isolated_cache):
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.png")
    settings = ImageSettings(resolution=32, bucket_step=8, min_bucket_side=16, min_size=16)
    records, _ = read_image_folder(tmp_path / "images", settings, default_caption="a photo of sks dog")
    options = build_config({"model": "tunesmith-tiny-sd", "data": {"images": str(tmp_path / "images")},
                            "method": {"name": "lora", "train_text_encoder": True}}).method
    results = []
    for requested in (False, True):
        base = tiny_model("sd1")
        torch.manual_seed(0)  # the same LoRA initialisation both times
        model = registry.of(options).apply(base, options, None)
        assert gradient_checkpointing(requested, model.pipeline) is requested
        assert model.pipeline.unet.is_gradient_checkpointing is requested
        task = DiffusionTask(model, ImageDataset(records, settings))
        task.model.train()
        batch = task.train_batches(type("cfg", (), {"batch_size": 2})())[1]([task.train_set[0], task.train_set[1]])
        loss = task.loss_module()(batch, 2)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in task.model.named_parameters()
                                         if p.requires_grad}))
    (plain, plain_grads), (checkpointed, checkpointed_grads) = results
    torch.testing.assert_close(checkpointed, plain)
    assert plain_grads.keys() == checkpointed_grads.keys() and any("text_encoder" in n for n in plain_grads)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(checkpointed_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
