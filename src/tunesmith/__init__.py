"""tunesmith: local-first fine-tuning with measured before/after numbers.

The Python API is the path the CLI takes:

    import tunesmith
    cfg = tunesmith.load_config("examples/cooking-assistant/lora.yaml", overrides={"training.epochs": 1})
    result = tunesmith.finetune(cfg, on_event=print)
    result.scores["tuned"]["rouge_l"], result.output
    model, tokenizer = tunesmith.load_tuned(result.run_dir)

Names are imported on first use, so `import tunesmith` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from tunesmith.version import __version__

if TYPE_CHECKING:
    from tunesmith.api import finetune, load_config, load_tuned, sweep
    from tunesmith.config.schema import RunConfig
    from tunesmith.errors import ConfigError, DataError, ModelError, TunesmithError
    from tunesmith.pipelines.sweep import SweepResult
    from tunesmith.run import RunResult
    from tunesmith.train.loop import CancelToken, TrainingInterrupted

__all__ = [
    "__version__", "load_config", "finetune", "sweep", "load_tuned", "RunConfig", "RunResult", "SweepResult",
    "CancelToken", "events",
    "TunesmithError", "ConfigError", "DataError", "ModelError", "TrainingInterrupted",
]

_WHERE = {
    "load_config": "tunesmith.api", "finetune": "tunesmith.api", "sweep": "tunesmith.api", "load_tuned": "tunesmith.api",
    "SweepResult": "tunesmith.pipelines.sweep",
    "RunConfig": "tunesmith.config.schema", "RunResult": "tunesmith.run", "CancelToken": "tunesmith.train.loop",
    "TrainingInterrupted": "tunesmith.train.loop", "TunesmithError": "tunesmith.errors",
    "ConfigError": "tunesmith.errors", "DataError": "tunesmith.errors", "ModelError": "tunesmith.errors",
}


def __getattr__(name: str):
    if name == "events":
        return import_module("tunesmith.events")
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'tunesmith' has no attribute {name!r}")
