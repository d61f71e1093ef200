"""The public functions behind `tunesmith.load_config`, `tunesmith.finetune`, `tunesmith.sweep` and
`tunesmith.load_tuned`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tunesmith.config.schema import RunConfig
from tunesmith.events import Event
from tunesmith.offline import offline_defaults
from tunesmith.run import RunResult, run
from tunesmith.train.loop import CancelToken


def load_config(source: str | Path | Mapping, overrides: Mapping | Sequence[str] | None = None) -> RunConfig:
    """A validated RunConfig from a YAML file (data paths relative to it) or a mapping of sections.

    `overrides` maps dotted keys to values ({"training.epochs": 2}) or is a list of "key=value" strings, as
    `--set` takes them. Raises ConfigError naming the key and what would be right.
    """
    from tunesmith.config import load

    overrides = dict(overrides) if isinstance(overrides, Mapping) else list(overrides or ())
    if isinstance(source, Mapping):
        raw = dict(source)
        load.apply_overrides(raw, overrides)
        return load.build_config(raw)
    return load.load_config(source, overrides)


def finetune(config: RunConfig | str | Path, *, on_event: Callable[[Event], None] | None = None,
             cancel: CancelToken | None = None, resume: bool = False, overwrite: bool = False) -> RunResult:
    """Train as the config says (a single run, `stages:` or `refine:`), score base and tuned, write the report.

    `on_event` receives every event of the run (tunesmith.events); `cancel.cancel()` from another thread stops the
    run after a checkpoint, raising TrainingInterrupted; `resume=True` continues it.
    """
    offline_defaults()
    if not isinstance(config, RunConfig):
        config = load_config(config)
    return run(config, resume=resume, overwrite=overwrite, on_event=on_event, cancel=cancel)


def sweep(config: RunConfig | str | Path, *, on_event: Callable[[Event], None] | None = None,
          cancel: CancelToken | None = None):
    """Run or continue the config's `sweep:` (an Optuna study, one run per trial); returns a SweepResult (trials,
    best trial, best.yaml, importance). `on_event` receives every trial's run events."""
    from tunesmith.pipelines.sweep import run_sweep

    offline_defaults()
    if not isinstance(config, RunConfig):
        config = load_config(config)
    return run_sweep(config, on_event=on_event, cancel=cancel)


def load_tuned(run_dir: str | Path, allow_pickle: bool = False):
    """(model, tokenizer) of a finished run: the base with its adapter, or the saved full model, in eval mode."""
    from tunesmith.models.load import load_trained

    return load_trained(Path(run_dir), allow_pickle=allow_pickle)
