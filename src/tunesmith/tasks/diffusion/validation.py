"""Sample grids during a diffusion run: every `validation.every` steps and at the end, at fixed prompts and seeds.

Grids are samples/step-NNNNNNN.png and samples/final.png in the run folder. Without a `validation:` section the
run draws one final grid of its subject prompt (or first caption).
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from pathlib import Path

from tunesmith.tasks.diffusion.sampling import Sampling, save_grid

STEP_GRID = re.compile(r"step-\d{7}\.png")  # a finished grid; step-N.tmp.png is one being written


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
    """The run's grids: every `every` steps (after the step's checkpoint), the final one, and on resume the grid due
    at the resumed step when the killed run did not finish it. Only finished grids count: each is written under a
    temporary name and renamed (sampling.save_grid), and leftovers of a killed run are removed here."""

    def __init__(self, pipeline, sampling: Sampling, folder: Path, autocast=nullcontext, console=None,
                 every: int | None = None):
        self.pipeline, self.sampling, self.folder, self.autocast = pipeline, sampling, Path(folder), autocast
        self.console, self.every = console, every
        for partial in self.folder.glob("*.tmp.png"):  # a grid half written when the run was killed
            partial.unlink()
        # a resumed run keeps its earlier grids
        self.saved: list[Path] = sorted(p for p in self.folder.glob("step-*.png") if STEP_GRID.fullmatch(p.name))

    def after_step(self, step: int) -> None:
        if self._due(step):
            self._save(_step_name(step))

    def resumed(self, step: int) -> None:
        """Training resumed from the checkpoint of `step`: the weights are that step's, so its grid (due after the
        checkpoint, and lost when the run was killed in between) is drawn now if it is missing. Fixed prompts and
        seeds make it the grid the uninterrupted run drew."""
        if self._due(step) and not (self.folder / _step_name(step)).is_file():
            self._save(_step_name(step))

    def final(self) -> Path:
        return self._save("final.png")

    def _due(self, step: int) -> bool:
        return bool(self.every) and step > 0 and step % self.every == 0

    def _save(self, name: str) -> Path:
        path = save_grid(self.pipeline, self.sampling, self.folder / name, self.autocast)
        # step grids in step order, the final grid last
        self.saved = sorted({*self.saved, path}, key=lambda p: (p.name == "final.png", p.name))
        if self.console is not None:
            self.console.print(f"samples: {path}")
        return path


def _step_name(step: int) -> str:
    return f"step-{step:07d}.png"
