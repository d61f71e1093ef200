"""One image to a training tensor: EXIF orientation, RGB, resize to cover the target, crop, flip (PIL + numpy)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Prepared:
    pixels: np.ndarray  # float32, channels first, in [-1, 1] (what the VAE encodes)
    original_size: tuple[int, int]  # (height, width) before resizing: SDXL's size conditioning
    crop_top_left: tuple[int, int]  # (top, left) of the crop in the resized image: SDXL's crop conditioning


def load_rgb(path: Path):
    """The image upright (EXIF orientation applied) in RGB; transparency is flattened onto white."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return image.convert("RGB")


def cover(width: int, height: int, size: tuple[int, int]) -> tuple[int, int]:
    """The smallest (width, height) of the image's shape that covers `size` (width, height)."""
    scale = max(size[0] / width, size[1] / height)
    return max(size[0], math.ceil(width * scale - 1e-6)), max(size[1], math.ceil(height * scale - 1e-6))


def centre_crop_origin(resized: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """(top, left) of a centred `size` crop of an image of `resized` (both width, height)."""
    return (resized[1] - size[1]) // 2, (resized[0] - size[0]) // 2


def prepare(path: Path, size: tuple[int, int], center_crop: bool = True, flip: bool = False,
            rng: random.Random | None = None) -> Prepared:
    """Resize `path` so it covers `size` (width, height), crop to it (centre or at random from `rng`), maybe flip."""
    from PIL import Image

    image = load_rgb(path)
    width, height = size
    resized = cover(image.width, image.height, size)
    original = (image.height, image.width)
    if resized != image.size:
        image = image.resize(resized, Image.Resampling.LANCZOS)
    if center_crop or rng is None:
        top, left = centre_crop_origin(resized, size)
    else:
        top, left = rng.randint(0, resized[1] - height), rng.randint(0, resized[0] - width)
    image = image.crop((left, top, left + width, top + height))
    if flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    pixels = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0
    return Prepared(np.ascontiguousarray(pixels), original, (top, left))
