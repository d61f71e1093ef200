"""The `tunesmith` command: one module per verb, each thin (parse, build config, call the library)."""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from tunesmith import offline
from tunesmith.errors import TunesmithError

# One module per verb under tunesmith.cli, each with register(app); listed in help order.
VERBS = (
    "data",
    "train",
    "generate",
    "chat",
    "export",
    "methods",
    "models",
    "sweep",
    "eval",
    "compare",
    "review",
    "serve",
)

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Fine-tune LLMs on your own data, locally.")
for verb in VERBS:
    importlib.import_module(f"tunesmith.cli.{verb}").register(app)


def main() -> None:
    offline.configure()
    try:
        # Without standalone mode click returns a typer.Exit code instead of exiting with it (e.g. a failed
        # --nproc worker group), so pass it on.
        code = app(standalone_mode=False)
    except TunesmithError as exc:
        Console(stderr=True).print(f"[bold red]error[/]: {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except Exception as exc:  # click's usage errors arrive here with standalone_mode=False
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    if isinstance(code, int) and code:
        sys.exit(code)


def main_with_argv(argv: list[str]) -> None:
    """`tunesmith *argv` in this process: what each rank of a `--nproc` run executes."""
    sys.argv = ["tunesmith", *argv]
    main()
