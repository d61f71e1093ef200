"""Pick the pipeline a config asks for: a single run, transfer-learning stages, or refinement rounds."""

from __future__ import annotations

from rich.console import Console

from tunesmith.config.schema import RunConfig
from tunesmith.run import RunSummary, run
from tunesmith.train.distributed import is_main_process


def run_config(config: RunConfig, *, resume: bool = False, overwrite: bool = False,
               console: Console | None = None) -> RunSummary:
    if not is_main_process():  # one voice: rank 0 prints for every process
        console = Console(quiet=True)
    if config.stages:
        from tunesmith.pipelines.stages import run_stages

        return run_stages(config, resume=resume, overwrite=overwrite, console=console)
    if config.refine:
        from tunesmith.pipelines.refine import run_refine

        return run_refine(config, resume=resume, overwrite=overwrite, console=console)
    return run(config, resume=resume, overwrite=overwrite, console=console)
