"""SD 2.x (v-prediction) and SDXL (two text encoders, size and crop conditioning) through `tunesmith.run.run`: every
method trains only its parameters, validates (grids, held-out loss) and saves; generate and the exports work on the
result. Tiny pipelines of each family from tests/diffusion/conftest.py (random weights, 32 px)."""

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from tests.diffusion.run_helpers import (
    PROMPT, SMALL, assert_generate_draws_a_grid, initial_pipeline, state, subject_images, train_run,
)
from tunesmith import events as ev
from tunesmith.config.load import build_config

STEPS = 2
METHODS = {
    "lora": {"name": "lora", "train_text_encoder": True},
    "dreambooth": {"name": "dreambooth", "train_text_encoder": True},
    "dreambooth_lora": {"name": "dreambooth_lora", "train_text_encoder": True, "prior_loss_weight": 0.5},
}
LABELS = {"sd2": "SD 2.x", "sdxl": "SDXL"}
ENCODERS = {"sd2": ("text_encoder",), "sdxl": ("text_encoder", "text_encoder_2")}


def family_config(model_dir, images, out, method):
    data = {"images": str(images), "instance_prompt": PROMPT, **SMALL}
    if method["name"] != "lora":
        data.update(class_prompt="a photo of a dog", num_class_images=2, class_inference_steps=1)
    return build_config({
        "model": str(model_dir), "data": data, "method": method,
        "training": {"max_steps": STEPS, "batch_size": 2, "learning_rate": 5e-3, "precision": "fp32",
                     "log_every": 1, "eval_every": 1, "save_every": STEPS, "lr_scheduler": "constant"},
        "validation": {"prompts": [PROMPT], "n": 2, "steps": 2, "every": 1},
        "output_dir": str(out),
    })


@pytest.fixture(scope="module")
def trained(tiny_dirs, tmp_path_factory):
    """(family, method) -> a finished run (each trained once per module)."""
    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNESMITH_CACHE", str(tmp_path_factory.mktemp("cache")))

        def get(family, name):
            if (family, name) not in runs:
                root = tmp_path_factory.mktemp(f"{family}-{name}")
                config = family_config(tiny_dirs[family], subject_images(root / "images"), root / "run",
                                       METHODS[name])
                runs[family, name] = train_run(config)
            return runs[family, name]

        yield get


@pytest.mark.slow
@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("family", ["sd2", "sdxl"])
def test_each_method_trains_validates_and_saves(trained, family, name):
    from tunesmith.tasks.diffusion.trained import load_trained

    run_ = trained(family, name)
    run_dir = run_.result.run_dir
    plan = run_.of_type(ev.Planned)[0].plan
    assert (plan["family"], plan["prediction_type"]) == (LABELS[family],
                                                         "v_prediction" if family == "sd2" else "epsilon")
    assert plan["class_images"] == (0 if name == "lora" else 2)
    losses = [e.val_loss for e in run_.of_type(ev.Evaluation)]
    assert len(losses) == STEPS and all(np.isfinite(losses)) and run_.result.val_loss == losses[-1]
    report = json.loads((run_dir / "report.json").read_text())
    assert (report["family"], report["method"], report["steps"]) == (LABELS[family], name, STEPS)
    assert report["grids"] == ["samples/step-0000001.png", "samples/step-0000002.png", "samples/final.png"]
    assert Image.open(run_dir / "samples" / "final.png").size == (2 * 32, 32)

    # only the method's parameters changed, and every one of them did
    tuned, _ = load_trained(run_dir)
    start = initial_pipeline(run_.config)
    trains_text = METHODS[name].get("train_text_encoder", False)
    for part in ("unet", "vae", *ENCODERS[family]):
        before, after = state(getattr(start, part)), state(getattr(tuned.pipeline, part))
        assert set(before) == set(after), part
        opened = part == "unet" or (trains_text and part != "vae")
        if name == "dreambooth":
            intended = set(before) if opened else set()
        else:
            intended = {n for n in before if "lora_" in n} if opened else set()
        if family == "sdxl" and part == "text_encoder":  # SDXL reads its penultimate layer: the last one is idle
            idle = (f"encoder.layers.{start.text_encoder.config.num_hidden_layers - 1}.", "final_layer_norm.")
            unread = {n for n in intended if n.removeprefix("text_model.").startswith(idle)}
            assert name == "dreambooth" or not unread  # no LoRA there
            intended = {n for n in intended if not n.removeprefix("text_model.").startswith(idle)}
        assert {n for n, t in after.items() if not torch.equal(before[n], t)} == intended, part


@pytest.mark.slow
@pytest.mark.parametrize("family", ["sd2", "sdxl"])
def test_generate_draws_a_grid_with_the_trained_weights(trained, tmp_path, family):
    assert_generate_draws_a_grid(trained(family, "lora").result.run_dir, tmp_path / "grid.png")


@pytest.mark.slow
def test_sdxl_kohya_export_carries_both_text_encoders_and_reloads_every_key(trained, tmp_path):
    from tunesmith.cli.main import app
    from tunesmith.export.diffusion_lora import lora_layers, sample_image
    from tunesmith.models.diffusion import load_diffusion
    from tunesmith.tasks.diffusion.trained import load_trained

    run_dir = trained("sdxl", "lora").result.run_dir
    out = tmp_path / "sks.safetensors"
    result = CliRunner().invoke(app, ["export", str(run_dir), "--format", "kohya", "--lora-dtype", "fp32",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output

    tuned, config = load_trained(run_dir)
    state_dict = load_file(str(out))
    modules = {key.rsplit(".", 2)[0] for key in state_dict if key.endswith(".lora_down.weight")}
    per_prefix = {prefix: sum(m.startswith(prefix) for m in modules) for prefix in ("lora_unet_", "lora_te1_",
                                                                                    "lora_te2_")}
    assert per_prefix == {"lora_unet_": len(lora_layers(tuned.pipeline.unet, "default")),
                          "lora_te1_": len(lora_layers(tuned.pipeline.text_encoder, "default")),
                          "lora_te2_": len(lora_layers(tuned.pipeline.text_encoder_2, "default"))}
    assert min(per_prefix.values()) > 0 and len(modules) == len(state_dict) // 3  # down, up, alpha each

    fresh = load_diffusion(config.model).pipeline
    fresh.set_progress_bar_config(disable=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fresh.load_lora_weights(str(out), adapter_name="kohya")
    assert not [w for w in caught if "lora" in str(w.message).lower()]
    for part in ("unet", "text_encoder", "text_encoder_2"):  # zero ignored keys: every layer came back
        assert set(lora_layers(getattr(fresh, part), "kohya")) == set(lora_layers(getattr(tuned.pipeline, part),
                                                                                     "default")), part
    np.testing.assert_allclose(sample_image(fresh), sample_image(tuned.pipeline), atol=1e-4)


def held_out_loss(run_dir, prediction_type: str) -> float:
    """The run's held-out denoising loss recomputed from diffusers' parts with the trained weights, regressing the
    UNet on `prediction_type`'s target (the same fixed images, timesteps and noise as the run's validation)."""
    from tunesmith.tasks.diffusion.data import run_images
    from tunesmith.tasks.diffusion.task import DiffusionTask
    from tunesmith.tasks.diffusion.trained import load_trained

    model, config = load_trained(run_dir)
    images = run_images(config, model)
    task = DiffusionTask(model, images.train, images.validation, cache_latents=False, cache_text=False)
    batch = task.eval_collator()([task.val_set[i] for i in range(len(task.val_set))])
    pipe = model.pipeline
    with torch.no_grad():
        mean, logvar = pipe.vae.encode(batch["pixels"]).latent_dist.parameters.chunk(2, dim=1)
        latents = (mean + torch.exp(0.5 * logvar) * batch["latent_noise"]) * pipe.vae.config.scaling_factor
        noise, t = batch["noise"], batch["timesteps"]
        alphas = task.scheduler.alphas_cumprod[t][:, None, None, None]
        noisy = alphas.sqrt() * latents + (1 - alphas).sqrt() * noise
        prediction = pipe.unet(noisy, t, pipe.text_encoder(batch["input_ids"])[0]).sample
    wanted = alphas.sqrt() * noise - (1 - alphas).sqrt() * latents if prediction_type == "v_prediction" else noise
    return float(((prediction - wanted) ** 2).mean())


@pytest.mark.slow
def test_an_sd2_run_regresses_the_velocity(trained):
    run_ = trained("sd2", "lora")
    velocity = held_out_loss(run_.result.run_dir, "v_prediction")
    assert run_.result.val_loss == pytest.approx(velocity, rel=1e-5)
    assert abs(held_out_loss(run_.result.run_dir, "epsilon") - velocity) > 1e-3 * velocity  # the target matters
    full = trained("sd2", "dreambooth").result.run_dir  # the saved model keeps predicting v
    scheduler = json.loads((full / "model" / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["prediction_type"] == "v_prediction"


@pytest.mark.slow
@pytest.mark.parametrize("family", ["sd2", "sdxl"])
def test_single_file_exports_read_back_for_full_and_lora_runs(trained, tiny_dirs, tmp_path, family):
    from tunesmith.cli.main import app
    from tunesmith.export.diffusion_lora import sample_image
    from tunesmith.models.diffusion import load_diffusion
    from tunesmith.tasks.diffusion.trained import load_trained

    for name in ("dreambooth", "dreambooth_lora"):
        out = tmp_path / f"{name}.safetensors"
        result = CliRunner().invoke(app, ["export", str(trained(family, name).result.run_dir), "--format",
                                          "single-file", "--out", str(out)])
        assert result.exit_code == 0, result.output
        reloaded = load_diffusion(out, config=tiny_dirs[family])  # the tiny architecture's configs
        assert reloaded.family.name == family and type(reloaded.pipeline).__name__ == reloaded.family.pipeline
        tuned, _ = load_trained(trained(family, name).result.run_dir)
        # full DreamBooth's file holds the saved weights exactly; a fused LoRA differs from its adapter by rounding
        # (which the sampler's guidance amplifies in these random pipelines)
        tolerance = 1e-4 if name == "dreambooth" else 1e-2
        np.testing.assert_allclose(sample_image(reloaded.pipeline), sample_image(tuned.pipeline), atol=tolerance)
