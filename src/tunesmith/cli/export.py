"""`tunesmith export RUN --out DIR [--merge] [--format safetensors|gguf] [--gguf-dtype f16|f32]`; diffusion runs:
`--format kohya|diffusers|single-file` (kohya and single-file write one .safetensors file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

LLM_FORMATS = ("safetensors", "gguf")


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_command(
        run_dir: Path = typer.Argument(..., help="a run folder (the output_dir of tunesmith train)"),
        out: Path = typer.Option(..., "--out", "-o", help="a new (or empty) folder to write to, or the file for "
                                                          "kohya / single-file"),
        merge: bool = typer.Option(False, "--merge", help="fold the adapter into the base: a standalone model"),
        fmt: Literal["safetensors", "gguf", "kohya", "diffusers", "single-file"] = typer.Option(
            None, "--format", help="language models: safetensors (default) or gguf (one llama.cpp file, Llama-family, "
                                   "implies --merge); diffusion: kohya (default for LoRA runs: A1111/ComfyUI), "
                                   "diffusers, single-file (one checkpoint; a LoRA is fused into its base)"
        ),
        gguf_dtype: Literal["f16", "f32"] = typer.Option("f16", "--gguf-dtype", help="weight precision in the GGUF"),
        lora_dtype: Literal["fp16", "bf16", "fp32"] = typer.Option("fp16", "--lora-dtype",
                                                                   help="diffusion: weight precision of a kohya file"),
    ) -> None:
        """Ship a tuned model: the adapter folder (default), a merged model, a GGUF file, or a diffusion LoRA."""
        from tunesmith.errors import ConfigError
        from tunesmith.models.family import run_family

        if run_family(run_dir) == "diffusion":
            from tunesmith.export.diffusion_run import export_diffusion_run

            if merge:
                raise ConfigError("--merge: is for language-model adapters; a diffusion LoRA exports as --format "
                                  "kohya or diffusers, or fused into its base as --format single-file")
            files = export_diffusion_run(run_dir, out, fmt or _diffusion_default(run_dir), lora_dtype)
        else:
            from tunesmith.export.merge import export_run

            if fmt is not None and fmt not in LLM_FORMATS:
                raise ConfigError(f"--format {fmt}: is for diffusion runs; a language model exports as "
                                  f"{' or '.join(LLM_FORMATS)}")
            files = export_run(run_dir, out, merge=merge, fmt=fmt or "safetensors", gguf_dtype=gguf_dtype)
        typer.echo(f"wrote {len(files)} files to {out}")
        for path in files:
            typer.echo(f"  {path.relative_to(out) if path != out else path.name}  ({_size(path.stat().st_size)})")


def _diffusion_default(run_dir: Path) -> str:
    from tunesmith.tasks.diffusion.trained import ADAPTER

    return "kohya" if (Path(run_dir) / ADAPTER).is_dir() else "single-file"


def _size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"
