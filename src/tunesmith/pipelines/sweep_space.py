"""The pieces of a sweep that need no training: the space's keys checked against the schema, Optuna's suggestion
for each parameter, a trial's config, and the objective's metric and direction.

Everything here runs before the first trial, so a typo in the space or the metric costs seconds, not a trial.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

from tunesmith.config.load import apply_overrides, build_config
from tunesmith.config.schema import RunConfig
from tunesmith.config.sweep import SweepParameter
from tunesmith.errors import ConfigError

# Top-level keys a sweep sets itself.
UNSEARCHABLE = {"sweep": "it is the search itself", "output_dir": "every trial runs in its own folder"}
VAL_LOSS = "val_loss"


def _float(trial, key: str, p: SweepParameter) -> float:
    return trial.suggest_float(key, p.low, p.high, log=p.log, step=p.step)


def _int(trial, key: str, p: SweepParameter) -> int:
    return trial.suggest_int(key, int(p.low), int(p.high), log=p.log, step=int(p.step or 1))


def _categorical(trial, key: str, p: SweepParameter) -> Any:
    return trial.suggest_categorical(key, p.choices)


SUGGEST = {"float": _float, "int": _int, "categorical": _categorical}


def distribution(p: SweepParameter):
    """The Optuna distribution `suggest` records for a parameter."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    kinds = {
        "float": lambda: FloatDistribution(p.low, p.high, log=p.log, step=p.step),
        "int": lambda: IntDistribution(int(p.low), int(p.high), log=p.log, step=int(p.step or 1)),
        "categorical": lambda: CategoricalDistribution(p.choices),
    }
    return kinds[p.type]()


def check_space_unchanged(study, space: dict[str, SweepParameter], name: str) -> None:
    """A resumed study can take new bounds, not a new kind, log scale or set of choices for a key (Optuna would
    fail mid-trial); say so before a trial starts."""
    from optuna.distributions import check_distribution_compatibility  # the rule the storage enforces

    for trial in study.get_trials(deepcopy=False):
        for key, recorded in trial.distributions.items():
            if key not in space:
                continue
            try:
                check_distribution_compatibility(recorded, distribution(space[key]))
            except ValueError:
                raise ConfigError(f"sweep.space.{key}: study '{name}' searched it as {recorded} (trial "
                                  f"{trial.number}); keep that, or start a new study with --set sweep.study=NAME"
                                  ) from None


def suggest(trial, space: dict[str, SweepParameter]) -> dict[str, Any]:
    """The trial's value for every searched key (Optuna records each with its distribution)."""
    return {key: SUGGEST[p.type](trial, key, p) for key, p in space.items()}


def trial_config(config: RunConfig, values: dict[str, Any], output_dir: Path, source: str,
                 compare_base: bool = False) -> RunConfig:
    """The sweep's config with the trial's values set, without `sweep:`, running in `output_dir`.

    Trials do not score the base model by default: it is the same model on the same examples in every trial.
    """
    raw = config.model_dump(mode="json", exclude={"sweep"})
    raw["output_dir"] = str(output_dir)
    raw["eval"]["compare_base"] = compare_base
    apply_overrides(raw, values)
    return build_config(raw, source=source)


def check_space(config: RunConfig) -> None:
    """Every key names a value of this config's schema, and the config accepts each parameter's bounds or choices."""
    for key, parameter in config.sweep.space.items():
        check_key(config, key)
        probes = parameter.choices if parameter.type == "categorical" else [parameter.low, parameter.high]
        for value in probes:
            value = int(value) if parameter.type == "int" else value
            trial_config(config, {key: value}, Path(config.output_dir), source=f"sweep.space.{key} = {value!r}")


def check_key(config: RunConfig, key: str) -> None:
    """`key` names a value of this config: the sections it passes through are read from the config itself, so
    `method.*` and `data.*` are checked against the configured method's and data's own options."""
    parts = key.split(".")
    if parts[0] in UNSEARCHABLE:
        raise ConfigError(f"sweep.space: '{key}' cannot be searched: {UNSEARCHABLE[parts[0]]}")
    node: BaseModel | None = config
    model: type[BaseModel] | None = RunConfig
    for depth, part in enumerate(parts):
        if model is None:
            raise ConfigError(f"sweep.space: unknown key '{key}': '{'.'.join(parts[:depth])}' is a value, not a section")
        if part not in model.model_fields:
            raise ConfigError(f"sweep.space: unknown key '{key}'{_hint(config, parts[:depth], part, model)}")
        value = getattr(node, part) if node is not None else None
        node = value if isinstance(value, BaseModel) else None
        model = type(node) if node is not None else _section(model.model_fields[part])  # an unset section: its type
    if model is not None:
        raise ConfigError(f"sweep.space: '{key}' is a section; search one of its keys, e.g. "
                          f"'{key}.{next(iter(model.model_fields))}'")


def _section(field) -> type[BaseModel] | None:
    """The section model of a field typed `Section` or `Section | None`; None for a value."""
    for candidate in (field.annotation, *get_args(field.annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _hint(config: RunConfig, parent: list[str], part: str, model: type[BaseModel]) -> str:
    where = " for method " + config.method.name if parent == ["method"] else ""
    close = difflib.get_close_matches(part, list(model.model_fields), n=1, cutoff=0.6)
    if close:
        return f"{where}; did you mean '{'.'.join([*parent, close[0]])}'?"
    return f"{where}; valid keys here: {', '.join(sorted(model.model_fields))}"


def scored_metrics(config: RunConfig) -> dict[str, bool]:
    """The tuned-model metrics this config scores, each with whether lower is better."""
    from tunesmith.evaluate.rows import chosen_metrics

    return {m.name: m.lower_is_better for m in chosen_metrics(config.eval.metrics, config.eval.task, raw_text=False)}


def has_validation(config: RunConfig) -> bool:
    data = config.data
    return getattr(data, "validation", None) is not None or getattr(data, "validation_split", 0) > 0


def check_objective(config: RunConfig) -> str:
    """The study's direction ("minimize"/"maximize"); a metric the trials cannot produce is a ConfigError."""
    sweep = config.sweep
    if sweep.metric == VAL_LOSS:
        if not has_validation(config):
            raise ConfigError("sweep.metric: val_loss needs validation data; give data.validation or "
                              "data.validation_split > 0")
        lower = True
    else:
        metrics = scored_metrics(config)
        if sweep.metric not in metrics:
            raise ConfigError(f"sweep.metric: '{sweep.metric}' is not scored by this config; choose val_loss or one "
                              f"of {', '.join(metrics)} (eval.metrics and eval.task)")
        if not getattr(config.data, "test", None) and not has_validation(config):
            raise ConfigError(f"sweep.metric: {sweep.metric} is scored on data.test (or validation data); give one")
        lower = metrics[sweep.metric]
    if sweep.pruner == "median":
        if config.stages or config.refine:
            raise ConfigError("sweep.pruner: median compares the steps of one run; a config with stages or refine "
                              "needs pruner: none")
        if not has_validation(config):
            raise ConfigError("sweep.pruner: median prunes on validation loss; give data.validation or "
                              "data.validation_split > 0, or set pruner: none")
    if sweep.direction != "auto":
        return sweep.direction
    return "minimize" if lower else "maximize"


def trial_value(result, metric: str, number: int) -> float:
    """The objective of a finished trial: its final validation loss or a tuned-model score."""
    value = result.val_loss if metric == VAL_LOSS else (result.scores.get("tuned") or {}).get(metric)
    if value is None:
        raise ConfigError(f"sweep.metric: trial {number} produced no {metric}; "
                          + ("it had no validation examples" if metric == VAL_LOSS else "it scored no test examples"))
    return float(value)
