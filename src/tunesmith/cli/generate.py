"""`tunesmith generate RUN --prompt "..."`: one answer from a trained language model, or a PNG grid of images
from a trained Stable Diffusion run (--seed, --n)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

IMAGE_OPTIONS = ("--seed", "--n", "--steps", "--guidance-scale", "--out")


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate_command(
        run_dir: Path = typer.Argument(..., help="a run folder (the output_dir of tunesmith train)"),
        prompt: str = typer.Option(..., "--prompt", "-p", help="the user message (diffusion: the image prompt)"),
        system: str = typer.Option(None, "--system", help="system message (default: the one the run was trained with)"),
        max_new_tokens: int = typer.Option(256, "--max-new-tokens"),
        seed: Optional[int] = typer.Option(None, "--seed", help="diffusion: image j is drawn from seed + j "
                                                                "(default 0)"),
        n: Optional[int] = typer.Option(None, "--n", min=1, help="diffusion: images in the grid (default 4)"),
        steps: Optional[int] = typer.Option(None, "--steps", min=1, help="diffusion: denoising steps (default: the "
                                                                         "run's validation.steps)"),
        guidance_scale: Optional[float] = typer.Option(None, "--guidance-scale", min=0.0,
                                                       help="diffusion: classifier-free guidance (default 7.5)"),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="diffusion: the PNG to write (default "
                                                                     "RUN/generated/PROMPT-seedS-nN.png)"),
    ) -> None:
        """Answer one prompt with the tuned model (greedy), or draw a grid of images with a tuned diffusion model."""
        from tunesmith.models.family import run_family

        if run_family(run_dir) == "diffusion":
            from tunesmith.tasks.diffusion.generate import generate_grid

            path = generate_grid(run_dir, prompt, seed=seed, n=n, steps=steps, guidance_scale=guidance_scale, out=out)
            typer.echo(f"wrote {path}")
            return
        image_options = [name for name, value in zip(IMAGE_OPTIONS, (seed, n, steps, guidance_scale, out))
                         if value is not None]
        if image_options:
            from tunesmith.errors import ConfigError

            raise ConfigError(f"{image_options[0]}: is for diffusion runs; {run_dir} holds a language model")

        from tunesmith.cli.prompting import render_chat
        from tunesmith.data.system_prompt import load_system_prompt
        from tunesmith.evaluate.generate import generate_texts
        from tunesmith.models.load import load_trained

        model, tokenizer = load_trained(run_dir)
        system = system or load_system_prompt(run_dir)
        messages = [{"role": "user", "content": prompt}]
        text = render_chat(tokenizer, messages, system)
        typer.echo(generate_texts(model, tokenizer, [text], max_new_tokens)[0])
