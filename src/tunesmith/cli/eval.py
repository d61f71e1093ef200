"""`tunesmith eval RUN_DIR [--test FILE] [--baselines zero_shot,few_shot,scratch] [--general FILE]
[--export-failures FILE]`; for a Stable Diffusion run `tunesmith eval RUN_DIR --real-images DIR --clip/--dino DIR`."""

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
        real_images: Optional[Path] = typer.Option(None, "--real-images",
                                                   help="diffusion runs: a folder of real subject images"),
        clip: Optional[Path] = typer.Option(None, "--clip", help="diffusion runs: a local CLIPModel folder"),
        dino: Optional[Path] = typer.Option(None, "--dino", help="diffusion runs: a local DINO/DINOv2/ViT folder"),
        prompt: Optional[list[str]] = typer.Option(None, "--prompt", help="diffusion runs: a prompt to draw "
                                                                          "(repeatable; default: the validation ones)"),
        n: int = typer.Option(4, "--n", help="diffusion runs: images per prompt"),
        seed: int = typer.Option(0, "--seed", help="diffusion runs: the first image's seed"),
    ) -> None:
        """Was fine-tuning worth it? Base zero-shot and few-shot (and from scratch) against tuned on one test set;
        for a diffusion run, subject fidelity (DINO, CLIP-I, CLIP-T) and language drift against real images."""
        from tunesmith.models.family import run_family

        if run_family(run_dir) == "diffusion":
            from tunesmith.errors import ConfigError
            from tunesmith.evaluate.diffusion_eval import evaluate_diffusion_run

            if real_images is None:
                raise ConfigError("--real-images: a diffusion run is scored against a folder of real subject images")
            report = evaluate_diffusion_run(run_dir, real_images, clip=clip, dino=dino, prompts=prompt or None, n=n,
                                            seed=seed)
            typer.echo(f"report: {report}")
            return
        from tunesmith.evaluate.run_eval import evaluate_run, parse_baselines

        evaluate_run(run_dir, test=test, baselines=parse_baselines(baselines), general=general,
                     export_failures_to=export_failures, overrides=list(set_ or []))
