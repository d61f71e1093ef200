"""`tunesmith review RUN_DIR [--against zero_shot|few_shot|scratch] [--port N] [--tally]`: blind side-by-side
review."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("review")
    def review_command(
        run_dir: Path = typer.Argument(..., help="a run folder with eval/examples.jsonl or report.json"),
        against: Optional[str] = typer.Option(
            None, "--against", help="baseline to compare with: zero_shot, few_shot or scratch (a row of the run's "
                                    "`tunesmith eval`; default: few_shot if present, else zero_shot)"
        ),
        port: int = typer.Option(8765, "--port", min=0, max=65535, help="port on 127.0.0.1; 0 picks a free one"),
        tally_only: bool = typer.Option(False, "--tally", help="write and print the tally of the votes, no server"),
    ) -> None:
        """Serve a local page where people compare baseline and tuned answers blind; votes go to RUN_DIR/review/."""
        from tunesmith.errors import TunesmithError

        if not run_dir.is_dir():
            raise TunesmithError(f"{run_dir}: not a folder (pass the output_dir of a run)")
        if tally_only:
            from tunesmith.review.items import read_run_answers
            from tunesmith.review.summary import SUMMARY_FILE, headline, write_review_summary
            from tunesmith.review.votes import VOTES_FILE, VoteStore

            answers = read_run_answers(run_dir)
            chosen = answers.compared_with(against).against
            summaries = write_review_summary(answers, VoteStore(run_dir / VOTES_FILE).read(), chosen)
            for summary in summaries.values():
                typer.echo(headline(summary))
            typer.echo(f"summary: {run_dir / SUMMARY_FILE}")
            return
        from tunesmith.review.serve import serve

        serve(run_dir, against, port, lambda url: typer.echo(f"review page: {url}  (Ctrl+C to stop)"))
