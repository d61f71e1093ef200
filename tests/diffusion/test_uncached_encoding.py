"""Without the latent cache the loss encodes each distinct image of a batch once (a validation batch repeats every
image once per fixed timestep), and gets the latents encoding every row would give."""

import numpy as np
import torch
from PIL import Image

from tunesmith.data.images.dataset import ImageDataset
from tunesmith.data.images.folder import read_image_folder
from tunesmith.data.images.settings import ImageSettings
from tunesmith.tasks.diffusion.collate import VALIDATION_TIMESTEPS
from tunesmith.tasks.diffusion.task import DiffusionTask


def test_a_validation_batch_encodes_each_image_once(isolated_cache, tiny_model, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    settings = ImageSettings(resolution=32, bucket_step=8, min_bucket_side=16, min_size=16)
    records, _ = read_image_folder(folder, settings, default_caption="sks dog")
    images = ImageDataset(records, settings)
    task = DiffusionTask(tiny_model("sd1"), images, images, cache_latents=False)
    batch = task.eval_collator()([task.val_set[0], task.val_set[1]])
    assert len(batch["pixels"]) == 2 * len(VALIDATION_TIMESTEPS)

    vae, encoded_rows = task.model.vae, []
    encode = vae.encode
    vae.encode = lambda pixels: encoded_rows.append(len(pixels)) or encode(pixels)
    loss = task.loss_module()
    with torch.no_grad():
        latents = loss.latents(batch)
    assert encoded_rows == [2]

    with torch.no_grad():  # what encoding every row gives, sampled with the same draws
        mean, logvar = encode(batch["pixels"]).latent_dist.parameters.chunk(2, dim=1)
        every_row = (mean + torch.exp(0.5 * logvar) * batch["latent_noise"]) * vae.config.scaling_factor
    torch.testing.assert_close(latents, every_row, rtol=1e-5, atol=1e-6)
