"""`tunesmith eval RUN_DIR [--test FILE] [--baselines zero_shot,few_shot,scratch] [--general FILE]
[--export-failures FILE]`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_command(
        run_dir: Path = typer.Argument(..., help="a run folder (the output_dir of tunesmith train)"),
        test: Optional[Path] = typer.Option(None, "--test", help="score on this file instead of the run's test set"),
        baselines: str = typer.Option("zero_shot,few_shot", "--baselines",
                                      help="comma-separated: zero_shot, few_shot, scratch (trains the architecture "
                                           "from random weights on the same token budget, in RUN_DIR/eval/scratch)"),
        general: Optional[Path] = typer.Option(None, "--general", help="general text for the forgetting check "
                                                                       "(default: the shipped English sample)"),
        export_failures: Optional[Path] = typer.Option(None, "--export-failures",
                                                       help="write what the tuned model gets wrong as training data"),
        set_: Optional[list[str]] = typer.Option(None, "--set", help="override a key, e.g. eval.max_new_tokens=64"),
    ) -> None:
        """Was fine-tuning worth it? Base zero-shot and few-shot (and from scratch) against tuned on one test set."""
        from tunesmith.evaluate.run_eval import evaluate_run, parse_baselines

        evaluate_run(run_dir, test=test, baselines=parse_baselines(baselines), general=general,
                     export_failures_to=export_failures, overrides=list(set_ or []))
