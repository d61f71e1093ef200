"""Sample grids across a kill and a resume (tasks/diffusion/validation.py SampleGrids): only finished grids are listed,
half-written ones are removed, and the grid due at the resumed step is drawn when the killed run lost it."""

import numpy as np
import pytest
from PIL import Image

from tunesmith.tasks.diffusion import validation
from tunesmith.tasks.diffusion.sampling import Sampling, save_grid
from tunesmith.tasks.diffusion.validation import SampleGrids

SAMPLING = Sampling(prompts=("a photo of sks dog",), n=1, steps=2, size=32)


@pytest.fixture
def pipeline(tiny_model):
    return tiny_model("sd1").pipeline


@pytest.fixture
def drawn(monkeypatch):
    """The names of the grids drawn (through the real save_grid)."""
    names = []

    def counted(pipeline, sampling, path, autocast):
        names.append(path.name)
        return save_grid(pipeline, sampling, path, autocast)

    monkeypatch.setattr(validation, "save_grid", counted)
    return names


def pixels(path):
    return np.asarray(Image.open(path), dtype=int)


def test_a_half_written_grid_is_removed_and_never_listed(pipeline, tmp_path):
    samples = tmp_path / "samples"
    finished = save_grid(pipeline, SAMPLING, samples / "step-0000002.png")
    for name in ("step-0000004.tmp.png", "final.tmp.png"):  # what a kill while writing leaves
        (samples / name).write_bytes(finished.read_bytes()[:100])
    (samples / "step-4.png").write_bytes(finished.read_bytes())  # not a grid name the run writes

    grids = SampleGrids(pipeline, SAMPLING, samples, every=2)

    assert grids.saved == [finished]
    assert not list(samples.glob("*.tmp.png"))


def test_resuming_at_a_grid_step_draws_its_missing_grid_as_the_uninterrupted_run_did(pipeline, tmp_path, drawn):
    uninterrupted = SampleGrids(pipeline, SAMPLING, tmp_path / "straight", every=2)
    uninterrupted.after_step(4)
    samples = tmp_path / "resumed" / "samples"
    samples.mkdir(parents=True)
    for step in (2, 6):  # grid 6: the killed run got further, but its checkpoint 6 did not verify
        Image.new("RGB", (32, 32), "white").save(samples / f"step-{step:07d}.png")
    drawn.clear()

    grids = SampleGrids(pipeline, SAMPLING, samples, every=2)
    grids.resumed(4)

    assert drawn == ["step-0000004.png"]
    assert np.array_equal(pixels(samples / "step-0000004.png"), pixels(tmp_path / "straight" / "step-0000004.png"))
    assert [p.name for p in grids.saved] == ["step-0000002.png", "step-0000004.png", "step-0000006.png"]


def test_resuming_draws_nothing_when_the_grid_is_there_or_not_due(pipeline, tmp_path, drawn):
    samples = tmp_path / "samples"
    white = samples / "step-0000004.png"
    samples.mkdir()
    Image.new("RGB", (32, 32), "white").save(white)
    grids = SampleGrids(pipeline, SAMPLING, samples, every=2)

    grids.resumed(4)  # its grid was finished before the kill
    grids.resumed(3)  # no grid is due at step 3
    SampleGrids(pipeline, SAMPLING, samples, every=None).resumed(6)  # no grids during training

    assert drawn == []
    assert pixels(white).min() == 255  # not redrawn
