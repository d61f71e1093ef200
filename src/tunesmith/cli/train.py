"""`tunesmith train CONFIG [--set key=value ...] [--resume] [--nproc N]`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer


def argv_without_nproc(argv: list[str]) -> list[str]:
    """The command line minus `--nproc N` / `--nproc=N`, for the processes the launcher starts."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            out.append(item)
    return out


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_command(
        config: Path = typer.Argument(..., help="YAML run configuration"),
        set_: Optional[list[str]] = typer.Option(None, "--set", help="override a key, e.g. training.epochs=2"),
        resume: bool = typer.Option(False, "--resume", help="continue from the last complete checkpoint"),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing run in output_dir"),
        allow_pickle: bool = typer.Option(False, "--allow-pickle", help="allow .bin/.pt weights (can run code)"),
        nproc: int = typer.Option(1, "--nproc", min=1, help="data-parallel processes on this machine"),
    ) -> None:
        """Fine-tune as the config says (one run, stages or refinement rounds); score base and tuned on the same test set."""
        from tunesmith.config.load import load_config
        from tunesmith.train.distributed import launch_local, preflight, world_size

        overrides = list(set_ or [])
        if allow_pickle:
            overrides.append("allow_pickle=true")
        loaded = load_config(config, overrides)  # a bad config fails here, once, before any process starts
        if nproc > 1 and world_size() == 1:
            preflight(loaded)
            # The launcher never imports the training code: its ranks are forked from a process that has.
            raise typer.Exit(launch_local(nproc, argv_without_nproc(sys.argv[1:])))
        from tunesmith.run import run

        run(loaded, resume=resume, overwrite=overwrite)
