"""`tunesmith export RUN --out DIR [--merge] [--format safetensors|gguf] [--gguf-dtype f16|f32]`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_command(
        run_dir: Path = typer.Argument(..., help="a run folder (the output_dir of tunesmith train)"),
        out: Path = typer.Option(..., "--out", "-o", help="a new (or empty) folder to write to"),
        merge: bool = typer.Option(False, "--merge", help="fold the adapter into the base: a standalone model"),
        fmt: Literal["safetensors", "gguf"] = typer.Option(
            "safetensors", "--format", help="gguf writes one llama.cpp file (Llama-family models; implies --merge)"
        ),
        gguf_dtype: Literal["f16", "f32"] = typer.Option("f16", "--gguf-dtype", help="weight precision in the GGUF"),
    ) -> None:
        """Ship a tuned model: the adapter folder (default), a merged model, or a GGUF file."""
        from tunesmith.export.merge import export_run

        files = export_run(run_dir, out, merge=merge, fmt=fmt, gguf_dtype=gguf_dtype)
        typer.echo(f"wrote {len(files)} files to {out}")
        for path in files:
            typer.echo(f"  {path.relative_to(out)}  ({_size(path.stat().st_size)})")


def _size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"
