"""Tiny Stable Diffusion runs for the diffusion fault tests: the SD 1.x-shaped pipeline of tests/diffusion at 32 px,
two subject images, a few steps; full DreamBooth keeps a weight average (EMA) and draws its own class images."""

from __future__ import annotations

from pathlib import Path

from tests.diffusion.run_helpers import CLASS_PROMPT, PROMPT, SMALL, subject_images

__all__ = ["diffusion_config", "saved_weights", "subject_images", "tiny_sd_folder"]

METHODS = {
    "dreambooth": {"name": "dreambooth", "ema": True, "ema_decay": 0.9},
    "dreambooth_lora": {"name": "dreambooth_lora", "r": 4, "prior_loss_weight": 0.5},
    "lora": {"name": "lora", "r": 4},
}


def tiny_sd_folder(tmp_path_factory) -> Path:
    """The tiny SD 1.x pipeline of tests/diffusion/conftest.py saved as a diffusers folder (random weights), built
    once a session for every module that asks."""
    import shutil

    from tests.diffusion.conftest import build_tiny_pipeline

    folder = tmp_path_factory.getbasetemp() / "tiny-sd1-faults"
    if not (folder / "model_index.json").is_file():
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        build_tiny_pipeline("sd1").save_pretrained(partial, safe_serialization=True)
        partial.rename(folder)
    return folder


def diffusion_config(model_dir: Path, images: Path, out: Path, method: str, class_images: Path | None = None,
                     **sections):
    """A RunConfig of `method` (a METHODS key); `sections` update its sections key by key."""
    from tunesmith.config.load import build_config

    data = {"images": str(images), "instance_prompt": PROMPT, **SMALL}
    if method != "lora":  # prior preservation: two class images, drawn into `class_images` when given
        data.update(class_prompt=CLASS_PROMPT, num_class_images=2, class_inference_steps=2)
        if class_images is not None:
            data["class_images"] = str(class_images)
    raw = {
        "model": str(model_dir), "data": data, "method": METHODS[method],
        "training": {"max_steps": 5, "batch_size": 2, "learning_rate": 5e-3, "precision": "fp32", "log_every": 1,
                     "eval_every": 3, "save_every": 2, "keep_checkpoints": 2, "lr_scheduler": "cosine",
                     "warmup_steps": 1},
        "validation": {"prompts": [PROMPT], "n": 1, "steps": 2, "every": 3},
        "output_dir": str(out),
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return build_config(raw)


def saved_weights(run_dir: Path) -> dict:
    """Every tensor a finished run saved (the LoRA file, or model/ and model.safetensors), by file and name."""
    from safetensors.torch import load_file

    files = sorted([*run_dir.glob("adapter/*.safetensors"), *run_dir.glob("model/**/*.safetensors"),
                    *run_dir.glob("model.safetensors")])
    assert files, f"{run_dir} saved no weights"
    return {f"{file.relative_to(run_dir)}:{key}": value for file in files for key, value in load_file(file).items()}
