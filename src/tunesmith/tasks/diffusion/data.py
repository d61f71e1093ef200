"""The `data:` section of a diffusion run to image datasets: subject images, class images, held-out images."""

from __future__ import annotations

from dataclasses import dataclass

from tunesmith.data.images.class_images import ClassImageSpec, ensure_class_images
from tunesmith.data.images.dataset import ImageDataset
from tunesmith.data.images.folder import read_image_folder, read_images
from tunesmith.data.images.settings import ImageSettings


@dataclass
class RunImages:
    train: ImageDataset
    validation: ImageDataset  # the held-out folder, or the training images (scored at fixed noise either way)
    classes: ImageDataset | None  # prior preservation's class images
    held_out: bool  # whether `validation` is a separate folder


def image_settings(data, family, seed: int) -> ImageSettings:
    """`data`: a DiffusionDataConfig; `family`: the model's (its resolution is the default)."""
    return ImageSettings(
        resolution=data.resolution or family.resolution, center_crop=data.center_crop, random_flip=data.random_flip,
        caption_dropout=data.caption_dropout, buckets=data.buckets, bucket_step=data.bucket_step,
        min_bucket_side=data.min_bucket_side, max_upscale=data.max_upscale, min_size=data.min_size,
        on_bad_image=data.on_bad_image, seed=seed,
    )


def instance_images(data, settings: ImageSettings) -> ImageDataset:
    records, _ = read_image_folder(data.images, settings, default_caption=data.instance_prompt)
    return ImageDataset(records, settings, kind="instance")


def validation_images(data, settings: ImageSettings, train: ImageDataset) -> tuple[ImageDataset, bool]:
    if data.validation_images is None:
        return ImageDataset(train.records, settings, kind="validation"), False
    records, _ = read_image_folder(data.validation_images, settings, default_caption=data.instance_prompt,
                                   key="data.validation_images")
    return ImageDataset(records, settings, kind="validation"), True


def class_images(data, model, settings: ImageSettings, on_progress=None) -> ImageDataset | None:
    """Prior preservation's class images (data.class_prompt): the user's, topped up with ones the base model draws
    (before the method changes it). Class images keep their own crops and flips but never drop their caption."""
    if data.class_prompt is None:
        return None
    spec = ClassImageSpec(prompt=data.class_prompt, count=data.num_class_images, resolution=settings.resolution,
                          steps=data.class_inference_steps, guidance_scale=data.class_guidance_scale,
                          seed=settings.seed)
    paths = ensure_class_images(model.pipeline, spec, model.fingerprint, data.class_images, on_progress)
    class_settings = ImageSettings(**{**settings.__dict__, "caption_dropout": 0.0})
    records, _ = read_images(paths, class_settings, lambda path: data.class_prompt,
                             f"data.class_images: {data.class_images or 'the class-image cache'}")
    return ImageDataset(records, class_settings, kind="class")


def run_images(config, model, on_progress=None) -> RunImages:
    data = config.data
    settings = image_settings(data, model.family, config.training.seed)
    train = instance_images(data, settings)
    validation, held_out = validation_images(data, settings, train)
    return RunImages(train, validation, class_images(data, model, settings, on_progress), held_out)
