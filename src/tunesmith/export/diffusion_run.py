"""Export a finished Stable Diffusion run: a kohya LoRA file (A1111, ComfyUI, Forge), a diffusers LoRA or pipeline
folder, or one original-layout checkpoint (full DreamBooth). LoRA files are verified by loading them back."""

from __future__ import annotations

import shutil
from pathlib import Path

from tunesmith.errors import ModelError

FORMATS = ("kohya", "diffusers", "single-file")
LORA_DTYPES = ("fp16", "bf16", "fp32")


def export_diffusion_run(run_dir: Path, out: Path, fmt: str, lora_dtype: str = "fp16") -> list[Path]:
    """Write `out` (a .safetensors file for kohya and single-file, a new or empty folder for diffusers) and return
    the files written."""
    from tunesmith.tasks.diffusion.trained import ADAPTER, MODEL, SINGLE_FILE, run_config

    run_dir, out = Path(run_dir), Path(out)
    if fmt not in FORMATS:
        raise ModelError(f"--format {fmt}: a diffusion run exports as {', '.join(FORMATS)}")
    if lora_dtype not in LORA_DTYPES:
        raise ModelError(f"--lora-dtype {lora_dtype}: choose one of {', '.join(LORA_DTYPES)}")
    config = run_config(run_dir)
    adapter = (run_dir / ADAPTER).is_dir()
    if not adapter and not (run_dir / MODEL).is_dir():
        raise ModelError(f"{run_dir}: training has not finished (no {ADAPTER}/ or {MODEL}/ folder); resume it first")
    if fmt == "kohya" and not adapter:
        raise ModelError(f"--format kohya: {run_dir} trained the whole model ({config.method.name}), not a LoRA; "
                         "export it with --format single-file (one checkpoint) or --format diffusers")
    if fmt == "single-file" and adapter:
        raise ModelError(f"--format single-file: {run_dir} trained a LoRA ({config.method.name}); export it with "
                         "--format kohya (one LoRA file for A1111/ComfyUI) or --format diffusers")
    if fmt in ("kohya", "single-file") and out.suffix != ".safetensors":
        raise ModelError(f"--out {out}: --format {fmt} writes one .safetensors file; name it *.safetensors")
    if fmt == "diffusers" and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelError(f"--out {out} already exists and is not an empty folder; choose a new folder or remove it")

    if fmt == "single-file":
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run_dir / SINGLE_FILE, out)
        return [out]
    if fmt == "diffusers" and not adapter:
        shutil.copytree(run_dir / MODEL, out, dirs_exist_ok=True)
        return sorted(p for p in out.rglob("*") if p.is_file())
    return _export_lora(run_dir, out, fmt, lora_dtype)


def _export_lora(run_dir: Path, out: Path, fmt: str, lora_dtype: str) -> list[Path]:
    import torch

    from tunesmith.export.diffusion_lora import export_diffusers_lora
    from tunesmith.export.kohya import export_kohya
    from tunesmith.tasks.diffusion.trained import load_trained

    model, _ = load_trained(run_dir)
    if fmt == "kohya":
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}[lora_dtype]
        return [export_kohya(model.pipeline, out, model.family.name, dtype=dtype)]
    path = export_diffusers_lora(model.pipeline, out)
    shutil.copyfile(run_dir / "config.yaml", out / "config.yaml")
    return [path, out / "config.yaml"]
