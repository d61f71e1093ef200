"""`tunesmith data check | prepare | report | preview`: look at and prepare training data before any training."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

CONFIG_SUFFIXES = (".yaml", ".yml")
FORMATS = "auto | chat | alpaca | prompt_completion | text"


def register(app: typer.Typer) -> None:
    data = typer.Typer(no_args_is_help=True, help="Check, prepare and inspect training data.")
    app.add_typer(data, name="data", help="Check, prepare (clean, deduplicate, redact, split) and inspect data.")

    @data.command("check")
    def check_command(
        file: Path = typer.Argument(..., help="a data file (.jsonl, .json, .csv, .parquet, .txt)"),
        format: str = typer.Option("auto", "--format", help=FORMATS),
    ) -> None:
        """List every problem of a data file, each with its line and a fix; exit 1 if there is any."""
        from tunesmith.data.prepare.check import check_file

        result = check_file(file, format)
        for line in result.problems.lines():
            typer.echo(line)
        typer.echo(result.summary())
        if not result.ok:
            raise typer.Exit(1)

    @data.command("prepare")
    def prepare_command(
        source: Path = typer.Argument(..., help="a data file, or a run config whose data.prepare says how"),
        out: Optional[Path] = typer.Option(None, "--out", help="folder for the prepared set (a config may omit it: "
                                           "the set then goes to the cache a run reuses)"),
        strict: bool = typer.Option(False, "--strict", help="stop at the first bad row instead of quarantining it"),
        set_: Optional[list[str]] = typer.Option(None, "--set", help="a setting, e.g. dedup.threshold=0.9 (with a "
                                                 "config: any key, e.g. data.prepare.dedup.threshold=0.9)"),
        model: Optional[str] = typer.Option(None, "--model", help="count lengths in this model's tokens (a data "
                                            "file; a config uses its model)"),
        format: str = typer.Option("auto", "--format", help=FORMATS),
    ) -> None:
        """Check, repair and clean, deduplicate, redact personal data and split; write the report beside the set."""
        from tunesmith.data.prepare.pipeline import inputs_for, prepare
        from tunesmith.errors import ConfigError

        config = _data_config(source, list(set_ or []), format, model)
        if out is None and source.suffix.lower() not in CONFIG_SUFFIXES:
            raise ConfigError(f"{source}: a data file needs --out DIR for the prepared set")
        settings = config.data.prepare
        if strict:
            settings.strict = True
        tokenizer = _tokenizer(config.model, config) if (model or source.suffix.lower() in CONFIG_SUFFIXES) else None
        prepared = prepare(inputs_for(config.data), settings, out, format=config.data.format, tokenizer=tokenizer)
        counts = prepared.manifest["counts"]
        verb = "reused" if prepared.reused else "prepared"
        typer.echo(f"{verb} {prepared.folder}: {counts['train']:,} train, {counts['validation']:,} validation, "
                   f"{counts['test']:,} test; {counts['rejected']:,} quarantined in rejected.jsonl")
        _echo_warnings(prepared.folder)
        typer.echo(f"report: {prepared.folder / 'report.md'}")

    @data.command("report")
    def report_command(
        target: Path = typer.Argument(..., help="a data file, or a folder written by tunesmith data prepare"),
        out: Optional[Path] = typer.Option(None, "--out", help="where to write report.md/.html/.json (default: the "
                                           "folder itself, or FILE-report/ beside a file)"),
        model: Optional[str] = typer.Option(None, "--model", help="count lengths in this model's tokens"),
        format: str = typer.Option("auto", "--format", help=FORMATS),
    ) -> None:
        """Write the data report alone: counts, lengths, turns, labels, duplicates, vocabulary, plots."""
        from tunesmith.data.prepare.report_only import report_file, report_folder

        tokenizer = _tokenizer(model) if model else None
        if target.is_dir():
            folder = out or target
            report_folder(target, folder, tokenizer)
        else:
            folder = out or target.with_name(f"{target.stem}-report")
            report_file(target, folder, format, tokenizer)
        _echo_warnings(folder)
        typer.echo(f"report: {folder / 'report.md'} (also report.html, report.json)")

    @data.command("preview")
    def preview_command(
        config: Path = typer.Argument(..., help="a run config"),
        n: int = typer.Option(3, "--n", min=1, help="how many training examples to show"),
        set_: Optional[list[str]] = typer.Option(None, "--set", help="override a config key"),
    ) -> None:
        """Show training examples as the model sees them (its chat template); trained tokens highlighted."""
        from rich.console import Console

        from tunesmith.config.load import load_config
        from tunesmith.data.splits import load_run_data
        from tunesmith.data.tokenize import encode_example

        loaded = load_config(config, list(set_ or []))
        tokenizer = _tokenizer(loaded.model, loaded)
        examples = load_run_data(loaded.data, tokenizer).train[:n]
        console = Console(highlight=False)
        console.print("[bold green]trained tokens[/] (the loss covers them) | [dim]context tokens[/]")
        for example in examples:
            encoded = encode_example(example, tokenizer, loaded.data.max_length, loaded.training.train_on)
            console.rule(_shown(example.where))
            if encoded is None:
                console.print(f"nothing to learn: every trained token lies beyond data.max_length="
                              f"{loaded.data.max_length}")
                continue
            console.print(_highlighted(encoded, tokenizer))
            trained = sum(label != -100 for label in encoded["labels"])
            console.print(f"[dim]{len(encoded['input_ids'])} tokens, {trained} trained[/]")


def _shown(where: str) -> str:
    """FILE:LINE with FILE relative to the working directory when it lies under it: a narrow terminal cuts a rule's
    title at its end, which would lose the line number of a long absolute path."""
    path, sep, line = where.rpartition(":")
    if not sep:
        return where
    try:
        path = str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        pass
    return f"{path}{sep}{line}"


def _data_config(source: Path, overrides: list[str], format: str, model: str | None):
    """The run config a preparation reads: the given config, or one around a bare data file."""
    from tunesmith.config.load import apply_override, build_config, load_config
    from tunesmith.config.prepare import PrepareConfig

    if source.suffix.lower() in CONFIG_SUFFIXES:
        config = load_config(source, overrides)
        if config.data.prepare is None:
            config.data.prepare = PrepareConfig()
        return config
    raw: dict = {"data": {"train": str(source), "format": format, "prepare": {}}}
    for item in overrides:
        apply_override(raw["data"]["prepare"], item)
    if model:
        raw["model"] = model
    return build_config(raw, source="--set")


def _tokenizer(spec: str, config=None):
    from tunesmith.models.load import load_tokenizer, resolve_model

    allow_pickle = config.allow_pickle if config is not None else False
    trust = config.trust_remote_code if config is not None else False
    return load_tokenizer(resolve_model(spec, allow_pickle), trust)


def _highlighted(encoded: dict, tokenizer):
    """The example's text, each run of trained tokens bold green and each run of context tokens dim."""
    from rich.text import Text

    text = Text()
    ids, labels = encoded["input_ids"], encoded["labels"]
    start = 0
    for end in range(1, len(ids) + 1):
        if end == len(ids) or (labels[end] != -100) != (labels[start] != -100):
            trained = labels[start] != -100
            text.append(tokenizer.decode(ids[start:end]), style="bold green" if trained else "dim")
            start = end
    return text


def _echo_warnings(folder: Path) -> None:
    import json

    report = folder / "report.json"
    for warning in json.loads(report.read_text()).get("warnings", []) if report.is_file() else []:
        typer.echo(f"warning: {warning}")
