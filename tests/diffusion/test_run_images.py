"""The `data:` section to datasets: subject captions, the held-out folder or the training images at fixed noise."""

import numpy as np
from PIL import Image

from tunesmith.config.load import build_config
from tunesmith.models.diffusion import FAMILIES
from tunesmith.models.diffusion_tiny import TINY_ALIAS
from tunesmith.tasks.diffusion.data import image_settings, instance_images, validation_images


def folder(path, n):
    path.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((40, 48, 3), 10 * i, dtype=np.uint8)).save(path / f"{i}.png")
    return path


def data(root, **keys):
    return build_config({"model": TINY_ALIAS, "data": {"images": str(folder(root / "subject", 3)),
                                                        "min_size": 16, **keys}}).data


def test_images_without_captions_take_the_subject_prompt_and_settings_follow_the_section(tmp_path):
    section = data(tmp_path, instance_prompt="a photo of sks dog", resolution=32, bucket_step=8, random_flip=0.5)
    (tmp_path / "subject" / "1.txt").write_text("sks dog asleep\n")

    settings = image_settings(section, FAMILIES["sd1"], seed=3)
    train = instance_images(section, settings)

    assert [r.caption for r in train.records] == ["a photo of sks dog", "sks dog asleep", "a photo of sks dog"]
    assert (settings.resolution, settings.bucket_step, settings.random_flip, settings.seed) == (32, 8, 0.5, 3)
    # without data.resolution, the family's own
    assert image_settings(data(tmp_path / "other"), FAMILIES["sdxl"], seed=0).resolution == 1024


def test_the_held_out_loss_uses_its_own_folder_or_the_training_images(tmp_path):
    section = data(tmp_path, instance_prompt="sks", validation_images=str(folder(tmp_path / "held-out", 2)))
    settings = image_settings(section, FAMILIES["sd1"], seed=0)
    train = instance_images(section, settings)

    held_out, separate = validation_images(section, settings, train)
    assert separate and [r.path.parent.name for r in held_out.records] == ["held-out"] * 2
    same, separate = validation_images(section.model_copy(update={"validation_images": None}), settings, train)
    assert not separate and same.records == train.records and same.kind == "validation"
