"""Export a finished Stable Diffusion run: a kohya LoRA file (A1111, ComfyUI, Forge), a diffusers LoRA or pipeline
folder, or one original-layout checkpoint (full DreamBooth's, or a LoRA fused into its base). LoRA files and fused
checkpoints are verified by loading them back."""

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
    if fmt in ("kohya", "single-file") and out.suffix != ".safetensors":
        raise ModelError(f"--out {out}: --format {fmt} writes one .safetensors file; name it *.safetensors")
    if fmt == "diffusers" and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelError(f"--out {out} already exists and is not an empty folder; choose a new folder or remove it")

    if fmt == "single-file" and adapter:
        from tunesmith.export.diffusion_single_file import export_fused_single_file

        return [export_fused_single_file(run_dir, out)]
    if fmt == "single-file":
        return [_copy(run_dir / SINGLE_FILE, out, shutil.copyfile)]
    if fmt == "diffusers" and not adapter:
        _copy(run_dir / MODEL, out, shutil.copytree)
        return sorted(p for p in out.rglob("*") if p.is_file())
    return _export_lora(run_dir, out, fmt, lora_dtype)


def _copy(source: Path, out: Path, copy) -> Path:
    """`copy(source, staging)`, then renamed to `out` (export/staged.py): a full disk leaves nothing at `out`."""
    from tunesmith.export.staged import EXPORT_ADVICE, file_bytes, staged

    with staged(out, file_bytes(source), "write", EXPORT_ADVICE) as tmp:
        copy(source, tmp)
    return out


def _export_lora(run_dir: Path, out: Path, fmt: str, lora_dtype: str) -> list[Path]:
    import torch

    from tunesmith.export.diffusion_lora import DIFFUSERS_WEIGHT_NAME, export_diffusers_lora, lora_bytes
    from tunesmith.export.kohya import export_kohya
    from tunesmith.export.staged import EXPORT_ADVICE, staged
    from tunesmith.tasks.diffusion.trained import load_trained

    model, _ = load_trained(run_dir)
    if fmt == "kohya":
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}[lora_dtype]
        return [export_kohya(model.pipeline, out, model.family.name, dtype=dtype)]
    with staged(out, lora_bytes(model.pipeline), "write", EXPORT_ADVICE) as tmp:
        export_diffusers_lora(model.pipeline, tmp)
        shutil.copyfile(run_dir / "config.yaml", tmp / "config.yaml")
    return [out / DIFFUSERS_WEIGHT_NAME, out / "config.yaml"]
