"""`tunesmith methods`: every method of every model family; `tunesmith methods CONFIG [--steps N] [--only lora,qlora]`:
compare the language-model methods on the same budget."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("methods")
    def methods_command(
        config: Optional[Path] = typer.Argument(None, help="YAML run configuration (model and data are used); "
                                                           "without one, list the methods"),
        steps: int = typer.Option(20, "--steps", min=1, help="optimizer steps per method"),
        only: Optional[str] = typer.Option(None, "--only", help="comma-separated subset, e.g. lora,qlora,full"),
        set_: Optional[list[str]] = typer.Option(None, "--set", help="override a key, e.g. training.batch_size=4"),
    ) -> None:
        """Train each method for the same number of steps and print params, peak memory, s/step and val loss."""
        from rich.console import Console

        if config is None:
            Console().print(methods_table())
            return

        from tunesmith.config.load import load_config
        from tunesmith.errors import ConfigError
        from tunesmith.pipelines.method_trials import run_trials, trial_methods

        loaded = load_config(config, list(set_ or []))
        if loaded.family != "llm":
            raise ConfigError(f"{config}: method trials compare language-model methods; {loaded.model} is a "
                              "diffusion model (run `tunesmith methods` to list its methods)")
        available = trial_methods()
        methods = [m.strip() for m in only.split(",")] if only else available
        unknown = [m for m in methods if m not in available]
        if unknown:
            raise ConfigError(f"--only: unknown method {unknown[0]!r}; choose from {', '.join(available)}")
        run_trials(loaded, methods, steps, Console())


def methods_table():
    """One row per registered method: family, name, default learning rate, what it saves, what trains."""
    from rich.table import Table

    from tunesmith.methods import registry

    table = Table(title="methods (method.name), by model family")
    for column in ("family", "method", "default lr", "saves", "what trains"):
        table.add_column(column)
    for method in registry.methods(None):
        table.add_row(registry.FAMILIES[method.family], method.name, f"{method.learning_rate:g}", method.saves,
                      method.summary)
    return table
