"""Class images for DreamBooth's prior preservation: the user's, topped up with ones the base model draws.

Generated images are keyed by the class prompt, the base model's fingerprint and the drawing settings, and image i
is drawn from its own seed, so asking for 150 after 100 draws only 50 more, and a changed prompt or model draws a
new set instead of reusing images of the wrong thing. In a user's folder, images tunesmith drew for another key
are left out; the user's own images always count.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from tunesmith.cache import cache_root
from tunesmith.data.images.folder import IMAGE_SUFFIXES
from tunesmith.errors import DataError

GENERATED_PREFIX = "tunesmith-class-"


@dataclass(frozen=True)
class ClassImageSpec:
    prompt: str
    count: int
    resolution: int = 512
    steps: int = 30
    guidance_scale: float = 7.5
    negative_prompt: str | None = None
    seed: int = 0
    batch_size: int = 4

    def key(self, fingerprint: str) -> str:
        settings = [self.prompt, fingerprint, self.resolution, self.steps, self.guidance_scale, self.negative_prompt,
                    self.seed]
        return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:12]


def ensure_class_images(pipeline, spec: ClassImageSpec, fingerprint: str, folder: str | Path | None = None,
                        on_progress=None) -> list[Path]:
    """`spec.count` class images: those in `folder` (if given) first, the rest drawn with `pipeline` and kept in
    `folder`, or in tunesmith's cache when there is none. `on_progress(done, total)` follows the drawing."""
    if spec.count < 1:
        raise DataError(f"data.num_class_images: {spec.count} must be at least 1 for prior preservation")
    key = spec.key(fingerprint)
    target = Path(folder) if folder else cache_root() / "class_images" / key
    if target.exists() and not target.is_dir():
        raise DataError(f"data.class_images: {target} is not a folder")
    target.mkdir(parents=True, exist_ok=True)
    images = sorted(p for p in target.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    own = [p for p in images if not p.name.startswith(GENERATED_PREFIX)]
    needed = max(0, spec.count - len(own))
    drawn = [target / f"{GENERATED_PREFIX}{key}-{i:05d}.png" for i in range(needed)]
    missing = [i for i, path in enumerate(drawn) if not path.is_file()]
    for start in range(0, len(missing), spec.batch_size):
        _draw(pipeline, spec, [drawn[i] for i in missing[start : start + spec.batch_size]],
              missing[start : start + spec.batch_size])
        if on_progress is not None:
            on_progress(min(start + spec.batch_size, len(missing)), len(missing))
    return own[: spec.count] + drawn


def _draw(pipeline, spec: ClassImageSpec, paths: list[Path], indices: list[int]) -> None:
    import torch

    generators = [torch.Generator().manual_seed(spec.seed * 1_000_003 + i) for i in indices]
    with torch.no_grad():
        images = pipeline(spec.prompt, negative_prompt=spec.negative_prompt, num_images_per_prompt=len(indices),
                          num_inference_steps=spec.steps, guidance_scale=spec.guidance_scale,
                          height=spec.resolution, width=spec.resolution, generator=generators).images
    for image, path in zip(images, paths):
        tmp = path.with_suffix(".tmp.png")
        image.save(tmp)
        tmp.replace(path)  # a crash mid-save never leaves a half image that counts as drawn
