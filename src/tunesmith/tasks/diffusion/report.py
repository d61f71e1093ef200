"""report.json / report.md of a diffusion run: what trained, how fast, the losses, and the sample grids."""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith.atomic import write_text_atomic

LABELS = {
    "model": "model", "family": "family", "method": "method", "steps": "optimizer steps",
    "images_per_second": "images/s (subject and class)", "train_images": "subject images",
    "class_images": "class images",
    "final_train_loss": "final training loss (subject images)",
    "final_val_loss": "held-out denoising loss (subject images only)",
    "val_loss_on": "held-out loss on", "trainable_params": "trainable parameters", "total_params": "parameters",
    "learning_rate": "learning rate", "precision": "precision", "train_seconds": "training seconds",
    "output": "output",
}
# with class images the training loss adds prior_loss_weight x their loss; the held-out loss never has that term
PRIOR_LABELS = {"final_train_loss": "final training loss (subject + prior term)"}


def write_report(run_dir: Path, meta: dict, grids: list[Path]) -> Path:
    """Write both files; `grids` are PNGs under run_dir, shown last first (the final grid on top)."""
    run_dir = Path(run_dir)
    shown = [str(Path(g).relative_to(run_dir)) for g in grids]
    write_text_atomic(run_dir / "report.json", json.dumps({**meta, "grids": shown}, indent=2) + "\n")
    lines = ["# Training report", "", "| | |", "|---|---|"]
    labels = {**LABELS, **(PRIOR_LABELS if meta.get("class_images") else {})}
    lines += [f"| {labels.get(key, key)} | {_cell(value)} |" for key, value in meta.items() if value is not None]
    lines += ["", "## Samples", "", "Rows are the validation prompts, columns the seeds (the same in every grid).", ""]
    lines += [f"### {Path(g).stem}\n\n![{Path(g).stem}]({g})\n" for g in reversed(shown)]
    path = run_dir / "report.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")
