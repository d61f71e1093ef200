"""`tunesmith generate RUN --prompt "..."`: one answer from a trained run."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate_command(
        run_dir: Path = typer.Argument(..., help="a run folder (the output_dir of tunesmith train)"),
        prompt: str = typer.Option(..., "--prompt", "-p", help="the user message"),
        system: str = typer.Option(None, "--system", help="system message (default: the one the run was trained with)"),
        max_new_tokens: int = typer.Option(256, "--max-new-tokens"),
    ) -> None:
        """Answer one prompt with the tuned model (greedy)."""
        from tunesmith.cli.prompting import render_chat
        from tunesmith.data.system_prompt import load_system_prompt
        from tunesmith.evaluate.generate import generate_texts
        from tunesmith.models.load import load_trained

        model, tokenizer = load_trained(run_dir)
        system = system or load_system_prompt(run_dir)
        messages = [{"role": "user", "content": prompt}]
        text = render_chat(tokenizer, messages, system)
        typer.echo(generate_texts(model, tokenizer, [text], max_new_tokens)[0])
