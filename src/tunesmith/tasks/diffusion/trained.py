"""What a finished diffusion run keeps, and loading it back (generate, export, eval).

LoRA methods: adapter/pytorch_lora_weights.safetensors (diffusers/PEFT format, verified by loading it back).
Full DreamBooth: model/ (a diffusers folder) and model.safetensors (one original-layout checkpoint for A1111 and
ComfyUI). Both folders carry the run's config.yaml.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tunesmith.errors import ModelError
from tunesmith.provenance import write_provenance

ADAPTER, MODEL, SINGLE_FILE = "adapter", "model", "model.safetensors"


def save_trained(model, method, config, run_dir: Path) -> Path:
    """`model`: the trained DiffusionModel; returns the adapter/ or model/ folder.

    Each result is written under a staging name after a free-space check and renamed into place once complete
    (export/staged.py): neither a full disk nor a kill leaves part of it under its final name, and a full disk ends
    in one TunesmithError naming the folder and the space, the last checkpoint kept for --resume."""
    from tunesmith.export.diffusion_lora import export_diffusers_lora, lora_bytes
    from tunesmith.export.staged import pipeline_bytes, staged
    from tunesmith.models.diffusion import quiet_progress
    from tunesmith.models.diffusion_layout import save_single_file

    run_dir, pipeline = Path(run_dir), model.pipeline
    folder, advice = run_dir / method.saves, _resume_advice(run_dir)
    if method.is_adapter:
        with staged(folder, lora_bytes(pipeline), "save", advice) as tmp:
            export_diffusers_lora(pipeline, tmp)
            write_provenance(tmp, config)
        return folder
    weights = pipeline_bytes(pipeline)
    # model.safetensors is renamed into place before model/: a run counts as finished once model/ is (load_trained).
    with staged(folder, 2 * weights, "save", advice) as tmp_folder:
        with quiet_progress():
            pipeline.save_pretrained(tmp_folder, safe_serialization=True)
        write_provenance(tmp_folder, config)
        with staged(run_dir / SINGLE_FILE, weights, "save", advice) as tmp_file:
            save_single_file(pipeline, tmp_file, model.family.name)
    return folder


def _resume_advice(run_dir: Path) -> str:
    from tunesmith.train.checkpoint import complete_checkpoints

    kept = complete_checkpoints(run_dir)
    if not kept:
        return "no checkpoint was kept, so --resume trains again from the start; free some space and run it again"
    return f"the last checkpoint {kept[-1].name} is intact; free some space and continue with --resume"


def run_config(run_dir: Path):
    """The config a run folder was trained with; its training images need not exist any more."""
    from tunesmith.config.load import build_config

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ModelError(f"{run_dir}: not a run folder (no config.yaml); pass the output_dir of a training run")
    return build_config(yaml.safe_load(path.read_text()) or {}, source=str(path), check_paths=False)


def load_trained(run_dir: Path, allow_pickle: bool = False):
    """(DiffusionModel with the trained weights, the run's config): the base with the run's LoRA as adapter
    "default", or the saved full model."""
    from tunesmith.export.diffusion_lora import DIFFUSERS_WEIGHT_NAME
    from tunesmith.library_logs import FP32_MODULES_CAST, NO_TEXT_ENCODER_LORA, dropping
    from tunesmith.models.diffusion import load_diffusion

    run_dir = Path(run_dir)
    config = run_config(run_dir)
    allowed = allow_pickle or config.allow_pickle
    lora = run_dir / ADAPTER / DIFFUSERS_WEIGHT_NAME
    if lora.is_file():
        with dropping(FP32_MODULES_CAST):  # the base may be a single file
            model = load_diffusion(config.model, allowed)
        with dropping(NO_TEXT_ENCODER_LORA):  # a UNet-only LoRA
            model.pipeline.load_lora_weights(str(lora), adapter_name="default")
    elif (run_dir / MODEL / "model_index.json").is_file():
        model = load_diffusion(run_dir / MODEL, allowed)
    else:
        raise ModelError(f"{run_dir}: training has not finished (no {ADAPTER}/ or {MODEL}/ folder); resume it first")
    return model, config
