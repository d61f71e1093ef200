"""The `sweep:` section: the search space and objective of `tunesmith sweep` (Optuna); each trial is one run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tunesmith.config.section import Section

# What Optuna can store as a categorical choice.
_SCALARS = (str, int, float, bool, type(None))


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
            if self.low is not None or self.high is not None or self.log or self.step is not None:
                raise ValueError("a categorical parameter takes only choices (no low, high, log or step)")
            if not all(isinstance(choice, _SCALARS) for choice in self.choices):
                raise ValueError("categorical choices must be numbers, strings, booleans or null")
            return self
        if self.choices is not None:
            raise ValueError(f"a {self.type} parameter takes low and high, not choices; or use type: categorical")
        if self.low is None or self.high is None or self.low >= self.high:
            raise ValueError(f"a {self.type} parameter needs low < high")
        if self.log and self.low <= 0:
            raise ValueError("log: true needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("log: true and step cannot be combined (Optuna samples one or the other)")
        if self.type == "int" and not all(float(v).is_integer() for v in (self.low, self.high, self.step or 1)):
            raise ValueError("an int parameter needs whole numbers for low, high and step")
        return self


class SweepConfig(Section):
    metric: str = Field("val_loss", description="val_loss or a tuned-model eval metric (rouge_l, exact_match, ...)")
    direction: Literal["auto", "minimize", "maximize"] = Field("auto", description="auto: from the metric")
    trials: int = Field(12, ge=1, description="finished (complete or pruned) trials the study should hold")
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "none"] = Field("median", description="stop a trial early on its validation loss")
    startup_trials: int = Field(
        4, ge=1, description="trials sampled at random and never pruned, before TPE models the space and the pruner "
                             "compares against them"
    )
    seed: int = 0
    storage: str | None = Field(None, description="Optuna storage URL; default sqlite in the sweep folder")
    study: str | None = Field(None, description="study name in the storage; default the output_dir folder's name")
    space: dict[str, SweepParameter] = Field(min_length=1)
