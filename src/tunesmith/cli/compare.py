"""`tunesmith compare RUN_A RUN_B ...`: runs scored on the same test set, one table."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare_command(
        runs: list[Path] = typer.Argument(..., help="run folders (their eval/report.json, or report.json)"),
    ) -> None:
        """Line up runs (methods, sweep trials, stages) scored on the same test set."""
        from rich.console import Console

        from tunesmith.evaluate.compare_runs import comparison_table, load_scored_runs

        Console().print(comparison_table(load_scored_runs(runs)))
