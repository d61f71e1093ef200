"""Sample grids during a diffusion run: every `validation.every` steps and at the end, at fixed prompts and seeds.

Grids are samples/step-NNNNNNN.png and samples/final.png in the run folder. Without a `validation:` section the
run draws one final grid of its subject prompt (or first caption).
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from tunesmith.tasks.diffusion.sampling import Sampling, save_grid


def run_sampling(config, family, train_set) -> Sampling:
    """The grid settings of a run: its `validation:` section, or the subject prompt at the defaults."""
    data, section = config.data, config.validation
    size = data.resolution or family.resolution
    if section is None:
        return Sampling(prompts=(data.instance_prompt or train_set.records[0].caption,), size=size)
    return Sampling(prompts=tuple(section.prompts), n=section.n, seed=section.seed, steps=section.steps,
                    guidance_scale=section.guidance_scale, size=section.resolution or size,
                    negative_prompt=section.negative_prompt)


class SampleGrids:
    def __init__(self, pipeline, sampling: Sampling, folder: Path, autocast=nullcontext, console=None,
                 every: int | None = None):
        self.pipeline, self.sampling, self.folder, self.autocast = pipeline, sampling, Path(folder), autocast
        self.console, self.every = console, every
        self.saved: list[Path] = sorted(self.folder.glob("step-*.png"))  # a resumed run keeps its earlier grids

    def after_step(self, step: int) -> None:
        if self.every and step % self.every == 0:
            self._save(f"step-{step:07d}.png")

    def final(self) -> Path:
        return self._save("final.png")

    def _save(self, name: str) -> Path:
        path = save_grid(self.pipeline, self.sampling, self.folder / name, self.autocast)
        self.saved = [p for p in self.saved if p != path] + [path]
        if self.console is not None:
            self.console.print(f"samples: {path}")
        return path
