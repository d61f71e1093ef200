"""The sections of a Stable Diffusion run: the image `data:` and the sample-grid `validation:`.

Folders are checked when the config is read, so a wrong path fails before a multi-GB pipeline loads. A finished
run's config is read back (generate, export) with the `check_paths: False` validation context, because its
training images may have moved since.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from pydantic_core import PydanticCustomError

from tunesmith.config.section import Section

IMAGES_HELP = "a folder of images with optional same-name .txt captions or a metadata.jsonl"
# Error kinds config/load.py's explain() prints as they are: a value's message after its key, or a rule's alone.
VALUE_ERROR, RULE_ERROR = "config_value", "config_rule"


def bad_value(message: str) -> PydanticCustomError:
    """The field's value is wrong; the message says why and what would be right (the key is put before it)."""
    return PydanticCustomError(VALUE_ERROR, message)


def broken_rule(message: str) -> PydanticCustomError:
    """A rule across keys; the message names them."""
    return PydanticCustomError(RULE_ERROR, message)


class DiffusionDataConfig(Section):
    images: str = Field(description=IMAGES_HELP)
    instance_prompt: str | None = Field(None, description="the caption of images without one (DreamBooth: 'a photo "
                                                          "of sks dog')")
    class_prompt: str | None = Field(None, description="prior preservation: what the class looks like in general")
    class_images: str | None = Field(None, description="class images to use (and where missing ones are drawn); "
                                                       "default: tunesmith's cache")
    num_class_images: int = Field(100, ge=1)
    class_inference_steps: int = Field(30, ge=1, description="denoising steps for each drawn class image")
    class_guidance_scale: float = Field(7.5, ge=0.0)
    validation_images: str | None = Field(None, description="held-out subject images for the denoising loss; "
                                                            "default: the training images at fixed noise")
    resolution: int | None = Field(None, ge=8, description="default: the model's (SD 1.x 512, SD 2.x 768, SDXL 1024)")
    center_crop: bool = Field(True, description="false: random crops (turns the latent cache off)")
    random_flip: float = Field(0.0, ge=0.0, le=1.0, description="probability of a horizontal flip")
    caption_dropout: float = Field(0.0, ge=0.0, le=1.0, description="probability of training a caption as ''")
    buckets: bool = Field(True, description="aspect-ratio buckets; false: square crops")
    bucket_step: int = Field(64, ge=8)
    min_bucket_side: int = Field(256, ge=8)
    max_upscale: float = Field(2.0, ge=1.0, description="never enlarge an image more than this")
    min_size: int = Field(64, ge=1, description="images with a shorter side are bad images")
    on_bad_image: Literal["skip", "error"] = "skip"
    cache_latents: bool = Field(True, description="encode images with the VAE once (off automatically under "
                                                  "random crops or flips)")

    @field_validator("images", "validation_images")
    @classmethod
    def _image_folder(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and _check_paths(info) and not Path(value).expanduser().is_dir():
            what = "does not exist" if not Path(value).expanduser().exists() else "is not a folder"
            raise bad_value(f"{value} {what}; expected {IMAGES_HELP}")
        return value

    @field_validator("class_images")
    @classmethod
    def _class_folder(cls, value: str | None, info: ValidationInfo) -> str | None:
        path = Path(value).expanduser() if value is not None else None
        if path is not None and _check_paths(info) and path.exists() and not path.is_dir():
            raise bad_value(f"{value} is not a folder; name a folder of class images (missing ones are drawn into it)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "DiffusionDataConfig":
        if self.class_images and not self.class_prompt:
            raise broken_rule("data.class_images: prior preservation needs data.class_prompt too (what the class "
                              "images show, e.g. 'a photo of a dog')")
        if self.resolution is not None and self.resolution % self.bucket_step:
            raise broken_rule(f"data.resolution: {self.resolution} is not a multiple of data.bucket_step "
                              f"({self.bucket_step})")
        return self


class ValidationConfig(Section):
    """Sample grids at fixed prompts and seeds: one row per prompt, `n` images per row (seeds seed .. seed+n-1)."""

    prompts: list[str] = Field(min_length=1)
    every: int | None = Field(None, ge=1, description="a grid every this many steps; always one at the end")
    seed: int = 0
    n: int = Field(4, ge=1, le=64)
    steps: int = Field(25, ge=1, description="denoising steps per image")
    guidance_scale: float = Field(7.5, ge=0.0)
    negative_prompt: str | None = None
    resolution: int | None = Field(None, ge=8, description="default: data.resolution")


def _check_paths(info: ValidationInfo) -> bool:
    return (info.context or {}).get("check_paths", True) is not False
