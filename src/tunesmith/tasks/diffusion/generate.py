"""`tunesmith generate RUN` for a diffusion run: a PNG grid of one prompt, image j drawn from seed + j."""

from __future__ import annotations

import re
from pathlib import Path

from tunesmith.tasks.diffusion.sampling import Sampling, save_grid
from tunesmith.tasks.diffusion.trained import load_trained

DEFAULT_N = 4


def generate_grid(run_dir: Path, prompt: str, seed: int | None = None, n: int | None = None,
                  steps: int | None = None, guidance_scale: float | None = None, out: Path | None = None) -> Path:
    """Draw `n` images of `prompt` with the run's trained weights, at its validation size and settings."""
    import torch

    model, config = load_trained(Path(run_dir))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.pipeline.to(device)
    section = config.validation
    sampling = Sampling(
        prompts=(prompt,), n=n or DEFAULT_N, seed=0 if seed is None else seed,
        steps=steps or (section.steps if section else Sampling.steps),
        guidance_scale=Sampling.guidance_scale if guidance_scale is None else guidance_scale,
        size=(section.resolution if section and section.resolution else None) or config.data.resolution
        or model.family.resolution,
        negative_prompt=section.negative_prompt if section else None,
    )
    name = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:60] or "prompt"
    out = Path(out) if out else Path(run_dir) / "generated" / f"{name}-seed{sampling.seed}-n{sampling.n}.png"
    return save_grid(model.pipeline, sampling, out)
