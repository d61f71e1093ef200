"""What the tests that train tiny Stable Diffusion runs through `run()` share: subject images, the finished run
with its events, and the pipeline as the run started (to see which parameters training changed)."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

PROMPT = "a photo of sks dog"
CLASS_PROMPT = "a photo of a dog"
SMALL = {"resolution": 32, "bucket_step": 8, "min_bucket_side": 16, "min_size": 16}  # data keys for 32 px


def subject_images(folder: Path, n: int = 2, seed: int = 0) -> Path:
    """`n` seeded random 32 px PNGs in `folder`."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


@dataclasses.dataclass
class Trained:
    config: object
    result: object
    events: list

    def of_type(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def train_run(config, **kwargs) -> Trained:
    """`run(config)` with its events kept (warnings of the tiny random pipelines silenced)."""
    from tunesmith.run import run

    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run(config, on_event=seen.append, **kwargs)
    return Trained(config, result, seen)


def state(module) -> dict:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def changed(before: dict, after: dict) -> set[str]:
    import torch

    return {name for name, tensor in after.items() if not torch.equal(before[name], tensor)}


def initial_pipeline(config):
    """The base as the run started: loaded, the method applied with the run's seed (LoRA's initial A)."""
    from accelerate.utils import set_seed

    from tunesmith.methods import registry
    from tunesmith.models.diffusion import load_diffusion

    model = load_diffusion(config.model)
    set_seed(config.training.seed)
    return registry.of(config.method).apply(model, config.method, None).pipeline


def assert_generate_draws_a_grid(run_dir: Path, out: Path, n: int = 3) -> None:
    """`tunesmith generate` on the run writes a grid of `n` 32 px images side by side."""
    from PIL import Image
    from typer.testing import CliRunner

    from tunesmith.cli.main import app

    result = CliRunner().invoke(app, ["generate", str(run_dir), "--prompt", "a photo of sks dog on the beach",
                                      "--seed", "7", "--n", str(n), "--steps", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (n * 32, 32)
