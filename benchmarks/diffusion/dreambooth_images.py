"""The DreamBooth benchmark's three image folders, made here (nothing downloaded, the same files on every machine).

- subject: the sd-dreambooth-lora example's eight "sks ball" pictures (512 px), as they are in the repository;
- held-out: more pictures of the same ball from the example's own drawing code, at seeds it does not use, scored
  but never trained on;
- class: "a photo of a ball": plain balls of other colours on the same kinds of ground, at the training resolution
  (where a tool that generates class images would write them), made once and given to both tools.

Every folder holds images only: the diffusers script opens every file of its data folders as an image.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sd-dreambooth-lora"
HELD_OUT_SEEDS = range(100, 104)  # the example draws seeds 0-7
CLASS_SEED = 1000


def _draw_subject():
    spec = importlib.util.spec_from_file_location("draw_subject", EXAMPLE / "draw_subject.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def subject_images(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(path, folder)) for path in sorted((EXAMPLE / "images").glob("*.png"))]


def held_out_images(folder: Path) -> list[Path]:
    draw_subject = _draw_subject()
    kinds = list(draw_subject.GROUNDS)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, seed in enumerate(HELD_OUT_SEEDS):
        path = folder / f"held-out-{i:02d}.png"
        draw_subject.draw(seed=seed, kind=kinds[i % len(kinds)]).save(path)
        paths.append(path)
    return paths


def class_images(folder: Path, count: int, size: int) -> list[Path]:
    """`count` plain balls of random colours, `size` px square."""
    from PIL import Image, ImageFilter

    draw_subject = _draw_subject()
    kinds = list(draw_subject.GROUNDS)
    side = draw_subject.SIZE
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        rng = np.random.default_rng(CLASS_SEED + i)
        horizon = rng.uniform(0.35, 0.55)
        radius = rng.uniform(0.14, 0.24) * side
        cx, ground_y = rng.uniform(0.3, 0.7) * side, rng.uniform(horizon + 0.25, 0.92) * side
        image = draw_subject.shadow(draw_subject.background(kinds[i % len(kinds)], horizon, rng), cx, ground_y,
                                    radius)
        image = _plain_ball(image, cx, ground_y - radius * 0.95, radius, rng.uniform(0.1, 0.95, 3))
        picture = Image.fromarray((image * 255).round().astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))
        path = folder / f"ball-{i:03d}.png"
        picture.resize((size, size), Image.Resampling.LANCZOS).save(path)
        paths.append(path)
    return paths


def _plain_ball(image: np.ndarray, cx: float, cy: float, radius: float, colour: np.ndarray) -> np.ndarray:
    """A one-colour sphere lit from the top left (the example's lighting, without the stripes)."""
    side = image.shape[0]
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
    dx, dy = (xx - cx) / radius, (yy - cy) / radius
    inside = dx**2 + dy**2 < 1.0
    dz = np.sqrt(np.clip(1.0 - dx**2 - dy**2, 0.0, 1.0))
    light = np.array([-0.5, -0.6, 0.62]) / np.linalg.norm([-0.5, -0.6, 0.62])
    lambert = np.clip(dx * light[0] + dy * light[1] + dz * light[2], 0.0, 1.0)
    shaded = colour * (0.25 + 0.75 * lambert)[..., None] + (lambert**40 * 0.6)[..., None]
    image = image.copy()
    image[inside] = np.clip(shaded[inside], 0.0, 1.0)
    return image
