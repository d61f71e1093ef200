"""Stable Diffusion through `tunesmith.run.run`: each method trains, only its parameters change, prior preservation,
exact resume, and the run's generate / export commands (tiny SD 1.x pipeline at 32 px)."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tests.diffusion.run_helpers import (
    PROMPT, SMALL, assert_generate_draws_a_grid, changed, initial_pipeline, state, subject_images, train_run,
)
from tunesmith import events as ev
from tunesmith.config.load import build_config
from tunesmith.run import run
from tunesmith.train.loop import CancelToken, TrainingInterrupted

METHODS = {
    "lora": {"name": "lora", "train_text_encoder": True, "text_encoder_lr": 5e-3},
    "dreambooth": {"name": "dreambooth", "ema": True, "ema_decay": 0.99},
    "dreambooth_lora": {"name": "dreambooth_lora", "prior_loss_weight": 0.5},
}


def run_config(model_dir, images, out, method, steps=6, **training):
    data = {"images": str(images), "instance_prompt": PROMPT, **SMALL}
    if method["name"] != "lora":
        data.update(class_prompt="a photo of a dog", num_class_images=2, class_inference_steps=2)
    return build_config({
        "model": str(model_dir), "data": data, "method": method,
        "training": {"max_steps": steps, "batch_size": 2, "learning_rate": 5e-3, "precision": "fp32", "log_every": 1,
                     "eval_every": 1, "save_every": 3, "lr_scheduler": "constant", **training},
        "validation": {"prompts": [PROMPT], "n": 2, "steps": 2, "every": 3},
        "output_dir": str(out),
    })


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("cache")
        patch.setenv("TUNESMITH_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def trained(tiny_sd_dir, tmp_path_factory, cache):
    """method name -> a finished run of that method (trained once per module)."""
    runs = {}

    def get(name):
        if name not in runs:
            root = tmp_path_factory.mktemp(name)
            config = run_config(tiny_sd_dir, subject_images(root / "images"), root / "run", METHODS[name])
            runs[name] = train_run(config)
        return runs[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", list(METHODS))
def test_each_method_trains_only_its_parameters_and_the_held_out_loss_falls(trained, name):
    from tunesmith.tasks.diffusion.trained import load_trained

    run_ = trained(name)
    losses = [e.val_loss for e in run_.of_type(ev.Evaluation)]
    assert len(losses) == 6 and losses[-1] < losses[0], losses
    tuned, _ = load_trained(run_.result.run_dir)
    start = initial_pipeline(run_.config)
    for part in ("unet", "text_encoder", "vae"):
        before, after = state(getattr(start, part)), state(getattr(tuned.pipeline, part))
        assert set(before) == set(after), part
        intended = {n for n in before if "lora_" in n} if name != "dreambooth" else (
            set(before) if part == "unet" else set())
        assert changed(before, after) == intended, part
    lora_parts = {"lora": {"unet", "text_encoder"}, "dreambooth_lora": {"unet"}, "dreambooth": set()}[name]
    assert {part for part in ("unet", "text_encoder") if any("lora_" in n for n in state(getattr(start, part)))} \
        == lora_parts


@pytest.mark.slow
def test_prior_preservation_trains_a_class_image_beside_each_subject_image(trained, cache):
    run_ = trained("dreambooth_lora")
    plan = run_.of_type(ev.Planned)[0].plan
    assert (plan["train"], plan["class_images"], plan["prior_loss_weight"]) == (2, 2, 0.5)
    steps = run_.of_type(ev.Step)
    assert steps[-1].seen == 6 * (2 + 2)  # every step: both subject images and a class image for each
    assert len(list(cache.glob("class_images/*/tunesmith-class-*.png"))) == 2
    plain = trained("lora").of_type(ev.Planned)[0].plan
    assert (plain["class_images"], trained("lora").of_type(ev.Step)[-1].seen) == (0, 6 * 2)


@pytest.mark.slow
def test_the_run_folder_has_the_report_the_grids_and_the_saved_weights(trained):
    import json

    lora_dir = trained("dreambooth_lora").result.run_dir
    report = json.loads((lora_dir / "report.json").read_text())
    assert report["steps"] == 6 and report["method"] == "dreambooth_lora" and report["final_val_loss"] > 0
    assert report["grids"] == ["samples/step-0000003.png", "samples/step-0000006.png", "samples/final.png"]
    assert Image.open(lora_dir / "samples" / "final.png").size == (2 * 32, 32)
    assert (lora_dir / "adapter" / "pytorch_lora_weights.safetensors").is_file()
    full = trained("dreambooth").result.run_dir
    assert (full / "model" / "model_index.json").is_file() and (full / "model.safetensors").is_file()


@pytest.mark.slow
def test_full_dreambooth_saves_the_weight_average(trained):
    from tunesmith.tasks.diffusion.trained import load_trained
    from tunesmith.train.checkpoint import load_companion, verify_checkpoint

    run_ = trained("dreambooth")
    tuned, _ = load_trained(run_.result.run_dir)
    last = run_.result.run_dir / "checkpoints" / "step-0000006"
    verify_checkpoint(last)  # the average is under the checkpoint's manifest
    assert "companion-ema.safetensors" in (last / "manifest.json").read_text()
    average = load_companion(last, "ema")["shadow_params"]
    unet = [p for p in tuned.pipeline.unet.parameters()]
    assert len(average) == len(unet)
    assert all(torch.equal(a, p.detach()) for a, p in zip(average, unet))


def stop_at(step: int, token: CancelToken):
    def watch(event):
        if isinstance(event, ev.Step) and event.step == step:
            token.cancel()

    return watch


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dreambooth_lora", "dreambooth"])
def test_a_stopped_run_resumes_to_the_same_weights(tiny_sd_dir, tmp_path, cache, trained, name):
    from tunesmith.tasks.diffusion.trained import load_trained

    straight = trained(name)
    config = run_config(tiny_sd_dir, straight.config.data.images, tmp_path / "run", METHODS[name])
    token = CancelToken()
    with pytest.raises(TrainingInterrupted):
        run(config, on_event=stop_at(2, token), cancel=token)
    resumed = train_run(config, resume=True)

    assert resumed.of_type(ev.TrainingStarted)[0].step == 2
    a, _ = load_trained(straight.result.run_dir)
    b, _ = load_trained(resumed.result.run_dir)
    for part in ("unet", "text_encoder"):
        for (key, x), y in zip(state(getattr(a.pipeline, part)).items(), state(getattr(b.pipeline, part)).values()):
            torch.testing.assert_close(x, y, atol=1e-6, rtol=0, msg=key)
    # the grids drawn after the resume show the same weights as the uninterrupted run's
    same = np.asarray(Image.open(straight.result.run_dir / "samples" / "final.png"), dtype=float)
    again = np.asarray(Image.open(resumed.result.run_dir / "samples" / "final.png"), dtype=float)
    assert np.abs(same - again).max() <= 1


@pytest.mark.slow
def test_generate_writes_a_grid_of_n_images(trained, tmp_path):
    assert_generate_draws_a_grid(trained("lora").result.run_dir, tmp_path / "grid.png")


@pytest.mark.slow
def test_kohya_export_reloads_into_a_fresh_base_with_every_layer(trained, tmp_path):
    from tunesmith.cli.main import app
    from tunesmith.export.diffusion_lora import lora_layers, sample_image
    from tunesmith.models.diffusion import load_diffusion
    from tunesmith.tasks.diffusion.trained import load_trained

    run_dir = trained("lora").result.run_dir
    out = tmp_path / "dog.safetensors"
    result = CliRunner().invoke(app, ["export", str(run_dir), "--format", "kohya", "--lora-dtype", "fp32",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output

    tuned, config = load_trained(run_dir)
    fresh = load_diffusion(config.model).pipeline
    fresh.set_progress_bar_config(disable=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fresh.load_lora_weights(str(out), adapter_name="kohya")
    assert not [w for w in caught if "lora" in str(w.message).lower()]
    for part in ("unet", "text_encoder"):
        assert set(lora_layers(getattr(fresh, part), "kohya")) == set(lora_layers(getattr(tuned.pipeline, part),
                                                                                     "default")), part
    np.testing.assert_allclose(sample_image(fresh), sample_image(tuned.pipeline), atol=1e-4)


@pytest.mark.slow
def test_exports_refuse_the_other_kind_of_run(trained, tmp_path):
    from tunesmith.cli.main import app

    full = trained("dreambooth").result.run_dir
    result = CliRunner().invoke(app, ["export", str(full), "--format", "kohya", "--out",
                                      str(tmp_path / "x.safetensors")])
    assert "trained the whole model (dreambooth), not a LoRA" in str(result.exception)
    result = CliRunner().invoke(app, ["export", str(full), "--format", "single-file", "--out",
                                      str(tmp_path / "full.safetensors")])
    assert result.exit_code == 0, result.output
    from tunesmith.models.diffusion import load_diffusion

    reloaded = load_diffusion(tmp_path / "full.safetensors", config=full / "model")  # the tiny architecture
    for (key, x), y in zip(state(reloaded.pipeline.unet).items(), state(load_diffusion(full / "model").pipeline.unet)
                           .values()):
        torch.testing.assert_close(x, y, atol=0, rtol=0, msg=key)


@pytest.mark.slow
def test_eval_scores_the_subject_and_the_class_drift(trained, encoder_dirs):
    import json

    from tunesmith.evaluate.diffusion_eval import evaluate_diffusion_run
    from tunesmith.evaluate.fidelity import ClipEncoder, DinoEncoder, fidelity_scores, language_drift
    from tunesmith.tasks.diffusion.sampling import Sampling, draw
    from tunesmith.tasks.diffusion.trained import load_trained

    run_ = trained("dreambooth_lora")
    clip_dir, dino_dir = encoder_dirs
    report = evaluate_diffusion_run(run_.result.run_dir, run_.config.data.images, clip=clip_dir, dino=dino_dir, n=2,
                                    steps=2)

    saved = json.loads((report.parent / "report.json").read_text())
    assert set(saved["scores"]) == {"dino", "clip_i", "clip_t", "language_drift"}
    assert saved["grids"] == ["samples.png", "class_before_after.png"]
    assert Image.open(report.parent / "class_before_after.png").size == (2 * 32, 2 * 32)  # before row, after row
    # the same numbers from the parts: the tuned model's images at the same seeds, the real images
    tuned, _ = load_trained(run_.result.run_dir)
    generated = draw(tuned.pipeline, Sampling((PROMPT,), n=2, steps=2, size=32))[0]
    real = [Image.open(p).convert("RGB") for p in sorted(Path(run_.config.data.images).glob("*.png"))]
    dino = DinoEncoder(dino_dir)
    expected = fidelity_scores(generated, real, [PROMPT] * 2, clip=ClipEncoder(clip_dir), dino=dino)
    classes = Sampling(("a photo of a dog",), n=2, steps=2, size=32)
    after = draw(tuned.pipeline, classes)[0]
    tuned.pipeline.disable_lora()
    expected["language_drift"] = language_drift(draw(tuned.pipeline, classes)[0], after, dino)
    for name, value in expected.items():
        assert saved["scores"][name] == pytest.approx(value, abs=1e-5), name
    assert "| DINO (subject identity) |" in report.read_text()


@pytest.mark.slow
def test_diffusers_exports_reload_equal_for_lora_and_full_runs(trained, tmp_path):
    from tunesmith.cli.main import app
    from tunesmith.export.diffusion_lora import sample_image
    from tunesmith.models.diffusion import load_diffusion
    from tunesmith.tasks.diffusion.trained import load_trained

    lora_run, full_run = trained("lora").result.run_dir, trained("dreambooth").result.run_dir
    for run_dir, out in ((lora_run, tmp_path / "lora"), (full_run, tmp_path / "full")):
        result = CliRunner().invoke(app, ["export", str(run_dir), "--format", "diffusers", "--out", str(out)])
        assert result.exit_code == 0, result.output
    tuned, config = load_trained(lora_run)
    fresh = load_diffusion(config.model).pipeline
    fresh.set_progress_bar_config(disable=True)
    fresh.load_lora_weights(str(tmp_path / "lora" / "pytorch_lora_weights.safetensors"), adapter_name="exported")
    np.testing.assert_allclose(sample_image(fresh), sample_image(tuned.pipeline), atol=1e-5)
    full = load_diffusion(tmp_path / "full").pipeline
    for part in ("unet", "text_encoder"):
        saved, exported = state(getattr(load_trained(full_run)[0].pipeline, part)), state(getattr(full, part))
        assert set(saved) == set(exported) and all(torch.equal(saved[k], exported[k]) for k in saved), part
    result = CliRunner().invoke(app, ["export", str(lora_run), "--format", "diffusers", "--out", str(tmp_path / "lora")])
    assert "already exists and is not an empty folder" in str(result.exception)


@pytest.mark.slow
def test_generate_and_export_print_no_library_notes_for_a_unet_only_lora(trained, tmp_path):
    import logging

    from tunesmith.cli.main import app

    class Collect(logging.Handler):  # on diffusers' root logger: what its handler would print
        def emit(self, record):
            printed.append(record.getMessage())

    printed, collect = [], Collect(logging.WARNING)
    logging.getLogger("diffusers").addHandler(collect)
    try:
        run_dir = trained("dreambooth_lora").result.run_dir  # LoRA on the UNet only
        assert_generate_draws_a_grid(run_dir, tmp_path / "grid.png")
        result = CliRunner().invoke(app, ["export", str(run_dir), "--format", "single-file", "--out",
                                          str(tmp_path / "fused.safetensors")])
        assert result.exit_code == 0, result.output
    finally:
        logging.getLogger("diffusers").removeHandler(collect)
    assert not [m for m in printed if "No LoRA keys associated" in m or "should be kept in float32" in m], printed
