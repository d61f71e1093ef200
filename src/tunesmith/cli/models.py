"""`tunesmith models [--for CONFIG] [--json]`: the models this machine has and, per method, whether they fit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

MEMORY_NOTE = ("memory: weights + gradients + AdamW state, as the training plan counts them; activations are not "
               "counted (they depend on batch size and example length)")


def register(app: typer.Typer) -> None:
    @app.command("models")
    def models_command(
        for_: Optional[Path] = typer.Option(None, "--for", help="rank the models for this config's data: context "
                                                                "needed, memory per method"),
        json_: bool = typer.Option(False, "--json", help="print JSON (for scripts) instead of the table"),
        set_: Optional[list[str]] = typer.Option(None, "--set", help="override a key of the --for config"),
    ) -> None:
        """List local models (embedded, config, TUNESMITH_MODELS, Hugging Face cache, GGUF) and what fits here."""
        from rich.console import Console

        console = Console()
        listing = model_listing(for_, list(set_ or []))
        if json_:
            console.out(json.dumps(listing, indent=2, ensure_ascii=False), highlight=False)
            return
        console.print(listing_table(listing))
        for line in [listing_device_line(listing), MEMORY_NOTE, *listing["notes"]]:
            console.print(line, highlight=False, soft_wrap=True)


def model_listing(config_path: Path | None, overrides: list[str]) -> dict:
    """What the command shows, JSON-ready: device, models (ranked with a config), notes."""
    from tunesmith.config.load import load_config
    from tunesmith.methods import memory
    from tunesmith.models.catalogue import find_models
    from tunesmith.models.method_fit import default_device
    from tunesmith.models.ranking import survey

    config = load_config(config_path, overrides) if config_path else None
    found = find_models((config.model,) if config else ())
    examples = _examples(config) if config else []
    device = default_device()
    candidates = survey(found, device, config, examples)
    return {
        "device": {"type": device.type, "memory_gib": round(memory.device_memory(device) / memory.GIB, 2)},
        "config": str(config_path) if config_path else None,
        "method": config.method.name if config else None,
        "models": [{"rank": i if config else None, **c.to_dict()} for i, c in enumerate(candidates, start=1)],
        "notes": [*found.notes, *(f"{c.info.name}: {c.unusable}" for c in candidates if c.unusable)],
    }


def _examples(config) -> list:
    from tunesmith.data.splits import load_run_data

    tokenizer = None
    if config.data.prepare is not None:  # its token-length filters measure with the config's model
        from tunesmith.models.load import load_tokenizer, resolve_model

        tokenizer = load_tokenizer(resolve_model(config.model, config.allow_pickle), config.trust_remote_code)
    data = load_run_data(config.data, tokenizer)
    return [*data.train, *data.validation, *data.test]


def _count(value: int | None) -> str:
    if value is None:
        return "–"
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return str(value)


def _fit_cell(fit: dict | None) -> str:
    if fit is None or fit["fits"] is None:
        return "[dim]n/a[/]"
    colour, mark = ("green", "✓") if fit["fits"] else ("red", "✗")
    return f"[{colour}]{mark} {fit['memory_gib']:.2f}[/]"


def _needed_cell(model: dict) -> str:
    from tunesmith.models.ranking import TOKENIZER

    if model["context_needed"] is None:
        return "–"
    text = f"{model['context_needed']:,}" + ("" if model["context_measured_with"] == TOKENIZER else " ~")
    return f"[red]{text}[/]" if model["context_fits"] is False else text


def listing_table(listing: dict):
    from rich.table import Table

    ranked = listing["config"] is not None
    methods = list(dict.fromkeys(name for model in listing["models"] for name in model["methods"]))
    title = f"Models for {listing['config']} (method {listing['method']})" if ranked else "Models on this machine"
    table = Table(title=title, caption="per method: fits this device? memory needed in GiB")
    headers = [*(["#"] if ranked else []), "model", "found in", "params", "context", *(["needed"] if ranked else []),
               "licence", "chat", *methods]
    for header in headers:
        table.add_column(header, justify="right" if header in ("#", "params", "context", "needed") else "left")
    for model in listing["models"]:
        table.add_row(
            *([str(model["rank"])] if ranked else []), model["name"], model["found_in"], _count(model["parameters"]),
            "–" if model["context"] is None else f"{model['context']:,}", *([_needed_cell(model)] if ranked else []),
            model["licence"], "yes" if model["chat_template"] else "no",
            *(_fit_cell(model["methods"].get(name)) for name in methods),
        )
    return table


def listing_device_line(listing: dict) -> str:
    device = listing["device"]
    where = "this GPU has" if device["type"] == "cuda" else "this machine has"
    line = f"device: {device['type']}; {where} {device['memory_gib']:.1f} GiB available"
    if listing["config"] is not None:
        line += ("; needed: the data's longest example in tokens (~: estimated from words where a model has no "
                 "tokenizer here); ranked by context, the config's method fitting, methods fitting, then size")
    return line
