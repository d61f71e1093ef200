"""A finished job's before/after report for its page: report.json's scores as rows with a change row, the run's
facts, and the first answers side by side; for a diffusion run its facts (the final sample grid is shown beside)."""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith.evaluate.report import better, lower_is_better

ROW_ORDER = ("base", "few_shot", "tuned")
FACTS = {"method": "method", "eval_set": "scored on", "train_steps": "steps", "train_tokens": "tokens",
         "train_seconds": "training seconds", "final_val_loss": "final validation loss"}
ANSWERS = {"reference": "reference", "base": "base model", "tuned": "tuned model"}
DIFFUSION_MARK = "grids"  # a diffusion run's report lists its sample grids; a language model's scores rows
DIFFUSION_HIDDEN = ("model", "output", "grids")  # the base is on the page already; the output is a server folder


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(metric: str, value) -> str:
    if not _number(value):
        return "–"
    return f"{value:.2f}" if lower_is_better(metric) else f"{value:.1f}"


def _fact(value) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if _number(value) else str(value)


def _change(metric: str, before, after) -> dict:
    if not (_number(before) and _number(after)):
        return {"text": "–", "verdict": "none"}
    verdict = "same" if after == before else "better" if better(metric, before, after) else "worse"
    delta = _shown(metric, after - before)
    return {"text": f"{delta if delta.startswith('-') else '+' + delta} {verdict}", "verdict": verdict}


def report_view(path: Path) -> dict | None:
    """What the job page shows of a run's report.json (None without one)."""
    if not path.is_file():
        return None
    document = json.loads(path.read_text(encoding="utf-8"))
    if DIFFUSION_MARK in document:
        return _diffusion_view(document)
    scored = {name: row for name, row in document.items() if name not in ("meta", "samples") and isinstance(row, dict)}
    names = [n for n in ROW_ORDER if n in scored] + [n for n in scored if n not in ROW_ORDER]
    metrics = list(dict.fromkeys(key for row in scored.values() for key, value in row.items()
                                 if key != "n" and _number(value)))
    rows = [{"name": name, "cells": [_shown(m, scored[name].get(m)) for m in metrics]} for name in names]
    change = ([_change(m, scored["base"].get(m), scored["tuned"].get(m)) for m in metrics]
              if "base" in scored and "tuned" in scored else None)
    meta = document.get("meta") or {}
    facts = [(label, _fact(meta[key])) for key, label in FACTS.items() if meta.get(key) is not None]
    samples = [{"prompt": sample.get("prompt", ""),
                "answers": [(label, sample[key]) for key, label in ANSWERS.items() if isinstance(sample.get(key), str)]}
               for sample in document.get("samples") or []]
    return {"metrics": metrics, "rows": rows, "change": change, "facts": facts, "samples": samples}


def _diffusion_view(document: dict) -> dict:
    from tunesmith.tasks.diffusion.report import LABELS

    facts = [(LABELS.get(key, key), _fact(value)) for key, value in document.items()
             if key not in DIFFUSION_HIDDEN and value is not None]
    return {"kind": "diffusion", "facts": facts}
