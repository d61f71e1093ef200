"""Stable Diffusion runs on two CPU processes (`tunesmith train --nproc 2`, gloo), as a user starts them: SD 1.x
DreamBooth LoRA with prior preservation equals the one-process run step by step, and SDXL LoRA with its text
encoders trains (text encoder 1's last layer, which SDXL never reads, must carry no trained parameter: DDP fails a
step on a trained parameter without a gradient). Tiny pipelines of tests/diffusion/conftest.py, 3 steps."""

import os
import subprocess
import sys

import pytest
import torch

from tests.diffusion.run_helpers import train_run
from tests.integration.diffusion_runs import diffusion_config, saved_weights, subject_images
from tunesmith.config.load import save_config
from tunesmith.train.metrics_log import read_metrics

pytestmark = pytest.mark.slow

STEPS = 3
# no grids or held-out loss before the end, no checkpoint: the steps are what is compared
QUIET = {"training": {"max_steps": STEPS, "eval_every": 100, "save_every": 100, "lr_scheduler": "constant",
                      "warmup_steps": 0},
         "validation": {"every": 100, "steps": 1}}


def tiny_folder(root, family: str):
    from tests.diffusion.conftest import build_tiny_pipeline

    folder = root / f"tiny-{family}"
    build_tiny_pipeline(family).save_pretrained(folder, safe_serialization=True)
    return folder


def train_on_two(config, root) -> subprocess.CompletedProcess:
    path = root / "config.yaml"
    save_config(config, path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TUNESMITH_CACHE": str(root / "cache")}
    result = subprocess.run([sys.executable, "-m", "tunesmith", "train", str(path), "--nproc", "2"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0 and "report:" in result.stdout, result.stderr[-3000:]
    return result


def train_losses(run_dir) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir / "metrics.jsonl") if r["type"] == "train"]


@pytest.fixture(scope="module")
def sd1_one_process(tmp_path_factory):
    """(model folder, images, the finished one-process DreamBooth LoRA run's folder)."""
    root = tmp_path_factory.mktemp("sd1-one")
    model, images = tiny_folder(root, "sd1"), subject_images(root / "images")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNESMITH_CACHE", str(root / "cache"))
        result = train_run(diffusion_config(model, images, root / "run", "dreambooth_lora", **QUIET)).result
    return model, images, result.run_dir


def test_sd1_dreambooth_lora_with_prior_on_two_processes_equals_one(sd1_one_process, tmp_path):
    model, images, one = sd1_one_process
    config = diffusion_config(model, images, tmp_path / "run", "dreambooth_lora", **QUIET)
    train_on_two(config, tmp_path)  # its own cache: rank 0 draws the class images again
    assert len(train_losses(one)) == STEPS
    assert train_losses(tmp_path / "run") == pytest.approx(train_losses(one), abs=1e-5)
    two, single = saved_weights(tmp_path / "run"), saved_weights(one)
    assert set(two) == set(single)
    # The ranks' gradients are summed in another order, and Adam's normalised step magnifies that where a gradient
    # is near zero; 1e-4 is 2% of one step's largest change (lr 5e-3), far below a step a rank missed.
    for key, tensor in single.items():
        torch.testing.assert_close(two[key], tensor, atol=1e-4, rtol=0, msg=key)


def test_sdxl_lora_with_text_encoders_trains_on_two_processes(tmp_path):
    config = diffusion_config(tiny_folder(tmp_path, "sdxl"), subject_images(tmp_path / "images"), tmp_path / "run",
                              "lora", **QUIET)
    config = config.model_copy(update={"method": config.method.model_copy(update={"train_text_encoder": True})})
    train_on_two(config, tmp_path)
    assert len(train_losses(tmp_path / "run")) == STEPS
    keys = saved_weights(tmp_path / "run")
    for part in ("unet.", "text_encoder.", "text_encoder_2."):  # every part's LoRA was saved
        assert any(key.split(":", 1)[1].startswith(part) for key in keys), part
