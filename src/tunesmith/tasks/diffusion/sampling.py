"""Images from a pipeline at fixed prompts and seeds, and the PNG grids that show them.

Image j of every prompt is drawn from seed + j, so a grid row is comparable across prompts, training steps, runs
and resumes: only the weights differ. Drawing switches the networks to eval mode and back, so a grid drawn during
training leaves training as it was.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sampling:
    prompts: tuple[str, ...]
    n: int = 4  # images per prompt
    seed: int = 0
    steps: int = 25
    guidance_scale: float = 7.5
    size: int = 512
    negative_prompt: str | None = None


def draw(pipeline, sampling: Sampling, autocast=nullcontext) -> list[list]:
    """One list of `n` PIL images per prompt."""
    import torch

    rows = []
    with _eval_mode(pipeline), torch.no_grad(), autocast():
        for prompt in sampling.prompts:
            generators = [torch.Generator().manual_seed(sampling.seed + j) for j in range(sampling.n)]
            rows.append(pipeline(prompt, negative_prompt=sampling.negative_prompt, num_images_per_prompt=sampling.n,
                                 num_inference_steps=sampling.steps, guidance_scale=sampling.guidance_scale,
                                 height=sampling.size, width=sampling.size, generator=generators).images)
    return rows


def grid(rows: list[list]):
    """The images as one picture: a row per prompt, a column per seed."""
    from PIL import Image

    width, height = rows[0][0].size
    picture = Image.new("RGB", (width * max(len(r) for r in rows), height * len(rows)), "white")
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            picture.paste(image, (j * width, i * height))
    return picture


def save_grid(pipeline, sampling: Sampling, path: Path, autocast=nullcontext) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    grid(draw(pipeline, sampling, autocast)).save(tmp)
    tmp.replace(path)  # never a half-written grid under the final name
    return path


@contextmanager
def _eval_mode(pipeline):
    parts = [getattr(pipeline, name, None) for name in ("unet", "vae", "text_encoder", "text_encoder_2")]
    parts = [part for part in parts if part is not None]
    training = [part.training for part in parts]
    for part in parts:
        part.eval()
    try:
        yield
    finally:
        for part, mode in zip(parts, training):
            part.train(mode)
