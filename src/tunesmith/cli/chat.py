"""`tunesmith chat RUN`: an interactive conversation that streams tokens as they are generated."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("chat")
    def chat_command(
        run_dir: Path = typer.Argument(..., help="a run folder (the output_dir of tunesmith train)"),
        system: str = typer.Option(None, "--system", help="system message (default: the one the run was trained with)"),
        max_new_tokens: int = typer.Option(256, "--max-new-tokens"),
        temperature: float = typer.Option(0.0, "--temperature", help="0 = greedy"),
    ) -> None:
        """Chat with the tuned model; an empty line or Ctrl-D ends the session."""
        from tunesmith.cli.prompting import render_chat
        from tunesmith.data.system_prompt import load_system_prompt
        from tunesmith.evaluate.generate import stream_text
        from tunesmith.models.load import load_trained

        model, tokenizer = load_trained(run_dir)
        system = system or load_system_prompt(run_dir)
        messages: list[dict] = []
        typer.echo("chatting with the tuned model; empty line to quit")
        while True:
            try:
                user = input("you> ").strip()
            except EOFError:
                break
            if not user:
                break
            messages.append({"role": "user", "content": user})
            text = render_chat(tokenizer, messages, system)
            typer.echo("bot> ", nl=False)
            reply = ""
            for piece in stream_text(model, tokenizer, text, max_new_tokens, temperature):
                reply += piece
                typer.echo(piece, nl=False)
            typer.echo()
            messages.append({"role": "assistant", "content": reply})
