"""`tunesmith train CONFIG [--set key=value ...] [--resume]`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_command(
        config: Path = typer.Argument(..., help="YAML run configuration"),
        set_: Optional[list[str]] = typer.Option(None, "--set", help="override a key, e.g. training.epochs=2"),
        resume: bool = typer.Option(False, "--resume", help="continue from the last complete checkpoint"),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing run in output_dir"),
        allow_pickle: bool = typer.Option(False, "--allow-pickle", help="allow .bin/.pt weights (can run code)"),
    ) -> None:
        """Fine-tune a model as the config says, then score base and tuned model on the same test set."""
        from tunesmith.config.load import load_config
        from tunesmith.run import run

        overrides = list(set_ or [])
        if allow_pickle:
            overrides.append("allow_pickle=true")
        run(load_config(config, overrides), resume=resume, overwrite=overwrite)
