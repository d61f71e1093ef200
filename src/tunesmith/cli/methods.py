"""`tunesmith methods CONFIG [--steps N] [--only lora,qlora]`: compare every method on the same budget."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("methods")
    def methods_command(
        config: Path = typer.Argument(..., help="YAML run configuration (model and data are used)"),
        steps: int = typer.Option(20, "--steps", min=1, help="optimizer steps per method"),
        only: Optional[str] = typer.Option(None, "--only", help="comma-separated subset, e.g. lora,qlora,full"),
        set_: Optional[list[str]] = typer.Option(None, "--set", help="override a key, e.g. training.batch_size=4"),
    ) -> None:
        """Train each method for the same number of steps and print params, peak memory, s/step and val loss."""
        from rich.console import Console

        from tunesmith.config.load import load_config
        from tunesmith.errors import ConfigError
        from tunesmith.pipelines.method_trials import run_trials, trial_methods

        available = trial_methods()
        methods = [m.strip() for m in only.split(",")] if only else available
        unknown = [m for m in methods if m not in available]
        if unknown:
            raise ConfigError(f"--only: unknown method {unknown[0]!r}; choose from {', '.join(available)}")
        run_trials(load_config(config, list(set_ or [])), methods, steps, Console())
