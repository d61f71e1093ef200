"""`tunesmith sweep CONFIG [--trials N] [--storage URL] [--set key=value ...]`: hyperparameter search with Optuna."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("sweep")
    def sweep_command(
        config: Path = typer.Argument(..., help="YAML run configuration with a sweep: section"),
        trials: Optional[int] = typer.Option(None, "--trials", min=1, help="finished trials the study should hold"),
        storage: Optional[str] = typer.Option(
            None, "--storage", help="Optuna storage URL shared by several machines, e.g. postgresql://user@host/db"
        ),
        set_: Optional[list[str]] = typer.Option(None, "--set", help="override a key, e.g. training.epochs=1"),
    ) -> None:
        """Search the sweep: space, one normal run per trial; run it again to continue a stopped sweep."""
        from tunesmith.config.load import load_config
        from tunesmith.pipelines.sweep import run_sweep

        overrides = list(set_ or [])
        if trials is not None:
            overrides.append(f"sweep.trials={trials}")
        loaded = load_config(config, overrides)
        if storage is not None and loaded.sweep is not None:  # not via --set: a URL is no YAML value
            loaded.sweep.storage = storage
        run_sweep(loaded)
