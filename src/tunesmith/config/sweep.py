"""The `sweep:` section: the search space and objective of `tunesmith sweep` (Optuna); each trial is one run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tunesmith.config.section import Section


class SweepParameter(Section):
    """One searched key, e.g. `training.learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}`."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    choices: list[Any] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _bounds_or_choices(self) -> "SweepParameter":
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs choices: [...]")
        elif self.low is None or self.high is None or self.low >= self.high:
            raise ValueError(f"a {self.type} parameter needs low < high")
        elif self.log and self.low <= 0:
            raise ValueError("log: true needs low > 0")
        return self


class SweepConfig(Section):
    metric: str = Field("val_loss", description="val_loss or a tuned-model eval metric (rouge_l, exact_match, ...)")
    direction: Literal["auto", "minimize", "maximize"] = Field("auto", description="auto: from the metric")
    trials: int = Field(12, ge=1)
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "none"] = Field("median", description="stop a trial early on its validation loss")
    seed: int = 0
    storage: str | None = Field(None, description="Optuna storage URL; default sqlite in the sweep folder")
    space: dict[str, SweepParameter] = Field(min_length=1)
