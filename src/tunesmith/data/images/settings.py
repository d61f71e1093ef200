"""How images become training examples: size, crop, buckets, augmentation, and what to do with bad files."""

from __future__ import annotations

from dataclasses import dataclass

from tunesmith.errors import ConfigError

BAD_IMAGE_POLICIES = ("skip", "error")


@dataclass(frozen=True)
class ImageSettings:
    resolution: int = 512  # the side of a square training image; buckets keep about this many pixels
    center_crop: bool = True  # False: random crop (an augmentation)
    random_flip: float = 0.0  # probability of a horizontal flip
    caption_dropout: float = 0.0  # probability of training a caption as "" (helps classifier-free guidance)
    buckets: bool = True  # aspect-ratio buckets; False: every image is resized and cropped to a square
    bucket_step: int = 64  # bucket sides are multiples of this (VAE factor x UNet downsampling at least)
    min_bucket_side: int = 256
    max_upscale: float = 2.0  # an image is never enlarged more than this; smaller ones get a smaller bucket
    min_size: int = 64  # images whose shorter side is below this are bad images
    on_bad_image: str = "skip"  # skip (named in a warning) | error
    seed: int = 0

    def __post_init__(self):
        if self.on_bad_image not in BAD_IMAGE_POLICIES:
            raise ConfigError(f"data.on_bad_image: '{self.on_bad_image}' is not one of skip, error")
        for name in ("random_flip", "caption_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"data.{name}: {getattr(self, name)} is not a probability between 0 and 1")
        if self.max_upscale < 1.0:
            raise ConfigError(f"data.max_upscale: {self.max_upscale} must be at least 1 (1 = never enlarge)")
        if self.resolution % self.bucket_step:
            raise ConfigError(f"data.resolution: {self.resolution} is not a multiple of data.bucket_step "
                              f"({self.bucket_step})")

    @property
    def image_augmentations(self) -> list[str]:
        """The random pixel transforms in use: each makes a cached latent wrong (caption dropout does not: the
        empty caption's embedding is cached like any other)."""
        return [name for name, on in (("random crop (data.center_crop: false)", not self.center_crop),
                                      ("data.random_flip", self.random_flip > 0)) if on]
