"""A job request in the OpenAI shape, and the tunesmith RunConfig it becomes.

`method` is OpenAI's `{type: supervised, supervised: {hyperparameters: {...}}}`, where `type` may also name a
tunesmith method (`{type: lora, lora: {hyperparameters: {...}, r: 8}}`: options beside the hyperparameters go to
the method section). `tunesmith` carries further config sections (training, eval, data options, method, refine).
The server owns the model, data paths and output folder, and the keys that would read or run files on the
server, so a request can never name a path.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from tunesmith.errors import ConfigError, TunesmithError

SUPERVISED = "supervised"
# What the `tunesmith` extension may set: an allowlist, so a config key added later that names a file (or runs
# code) is refused until someone decides it is safe on a server. The model, data paths and output are the server's.
EXTENSION_SECTIONS = ("method", "training", "eval", "data", "refine")
EXTENSION_DATA_KEYS = ("format", "max_length", "validation_split")
SERVER_KEYS = ("model", "output_dir", "init_adapter", "allow_pickle", "trust_remote_code")
SERVER_DATA_KEYS = ("train", "validation", "test")
Auto = Literal["auto"]


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_epochs: Auto | PositiveInt = "auto"
    batch_size: Auto | PositiveInt = "auto"
    learning_rate_multiplier: Auto | PositiveFloat = "auto"


class MethodOptions(BaseModel):
    # A tunesmith method's own options (r, alpha, ...) ride along; the config schema checks them.
    model_config = ConfigDict(extra="allow")
    hyperparameters: Hyperparameters | None = None


class MethodRequest(BaseModel):
    """`type` and the options object named after it (`supervised`, `lora`, `full`, ...)."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(SUPERVISED, pattern=r"^[a-z_]{1,32}$")
    supervised: MethodOptions | None = None

    @model_validator(mode="after")
    def _options_match_type(self) -> "MethodRequest":
        for key, value in (self.model_extra or {}).items():
            if key != self.type:
                raise ValueError(f"method.{key} is given but method.type is '{self.type}'")
            if not isinstance(value, dict):
                raise ValueError(f"method.{key} must be an object")
        if self.supervised is not None and self.type != SUPERVISED:
            raise ValueError(f"method.supervised is given but method.type is '{self.type}'")
        return self

    def options(self) -> dict:
        chosen = self.supervised.model_dump(exclude_none=True) if self.type == SUPERVISED and self.supervised else (
            (self.model_extra or {}).get(self.type) or {})
        return dict(chosen)


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=64)
    training_file: str = Field(min_length=1, max_length=64)
    validation_file: str | None = Field(None, max_length=64)
    suffix: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    metadata: dict[str, str] | None = Field(None, max_length=16)
    method: MethodRequest | None = None
    hyperparameters: Hyperparameters | None = Field(None, description="deprecated in OpenAI's API: use method")
    integrations: list[dict[str, Any]] | None = Field(None, max_length=0, description="not supported: nothing "
                                                      "leaves this server")
    tunesmith: dict[str, Any] | None = Field(None, description="further tunesmith config sections: training, eval, "
                                             "data (format, max_length, validation_split), method, refine")

    @model_validator(mode="after")
    def _metadata_sizes(self) -> "JobCreate":
        for key, value in (self.metadata or {}).items():
            if len(key) > 64 or len(value) > 512:
                raise ValueError("metadata keys are at most 64 characters and values at most 512")
        return self

    def method_object(self) -> dict:
        """The method as stored and shown: the deprecated top-level hyperparameters folded into it."""
        if self.hyperparameters is not None:
            if self.method is not None:
                raise JobSpecError("give hyperparameters inside method, not both", param="hyperparameters")
            return {"type": SUPERVISED, SUPERVISED: {"hyperparameters": self.hyperparameters.model_dump()}}
        return (self.method or MethodRequest()).model_dump(exclude_none=True)


class JobSpecError(TunesmithError):
    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def method_names() -> list[str]:
    from tunesmith.methods import registry

    return registry.names("llm")


def run_config(method: dict, extension: dict | None, seed: int | None, *, base_model: str, train: Path,
               validation: Path | None, output_dir: Path):
    """The RunConfig a job trains; JobSpecError (with the request parameter to blame) for a bad request."""
    from tunesmith.config.load import build_config

    request = MethodRequest.model_validate(method)
    options = request.options()
    hyper = Hyperparameters.model_validate(options.pop("hyperparameters", None) or {})
    raw = _extension(extension)
    section = _method_section(request.type, options, dict(raw.get("method") or {}))
    if section:  # otherwise the config's default method
        raw["method"] = section
    training = dict(raw.get("training") or {})
    if hyper.n_epochs != "auto":
        training["epochs"] = hyper.n_epochs
    if hyper.batch_size != "auto":
        training["batch_size"] = hyper.batch_size
    if seed is not None:
        training["seed"] = seed
    raw["training"] = training
    raw["data"] = {**(raw.get("data") or {}), "train": str(train),
                   **({"validation": str(validation)} if validation else {})}
    raw.update(model=base_model, output_dir=str(output_dir))
    try:
        config = build_config(raw, source="request")
        if hyper.learning_rate_multiplier != "auto":  # of the method's (or the config's) learning rate
            if config.training.learning_rate == "auto":
                raise ConfigError("learning_rate_multiplier multiplies a learning rate, but the tunesmith config "
                                  "sets training.learning_rate: auto (a range test picks it); drop one of them")
            config.training.learning_rate = config.training.learning_rate * hyper.learning_rate_multiplier
    except ConfigError as error:
        raise JobSpecError(str(error), param="tunesmith") from None
    return config


def resolved_hyperparameters(config) -> dict:
    """What `auto` became, shown on the job like OpenAI does once a job is validated."""
    from tunesmith.methods import registry

    default, rate = registry.of(config.method).learning_rate, config.training.learning_rate
    epochs = config.training.epochs
    return {"n_epochs": int(epochs) if epochs == int(epochs) else epochs, "batch_size": config.training.batch_size,
            "learning_rate_multiplier": "auto" if rate == "auto" else round(rate / default, 6)}


def _extension(extension: dict | None) -> dict:
    raw = copy.deepcopy(extension or {})
    for key in raw:
        if key in SERVER_KEYS:
            where = "the request's model field" if key == "model" else "the server"
            raise JobSpecError(f"tunesmith.{key}: set by {where}, not by the config", param=f"tunesmith.{key}")
        if key not in EXTENSION_SECTIONS:
            raise JobSpecError(f"tunesmith.{key}: not accepted in a job; the sections a job may set are "
                               f"{', '.join(EXTENSION_SECTIONS)}", param=f"tunesmith.{key}")
    data = raw.get("data")
    if data is not None and not isinstance(data, dict):
        raise JobSpecError("tunesmith.data: must be an object", param="tunesmith.data")
    for key in data or {}:
        if key in SERVER_DATA_KEYS:
            raise JobSpecError(f"tunesmith.data.{key}: data comes from training_file and validation_file (file ids)",
                               param=f"tunesmith.data.{key}")
        if key not in EXTENSION_DATA_KEYS:
            raise JobSpecError(f"tunesmith.data.{key}: not accepted in a job; it may set "
                               f"{', '.join(EXTENSION_DATA_KEYS)}", param=f"tunesmith.data.{key}")
    return raw


def _method_section(kind: str, options: dict, section: dict) -> dict:
    if kind == SUPERVISED:
        if options:
            raise JobSpecError(
                f"method.supervised takes only hyperparameters (got {', '.join(sorted(options))}); to set a "
                "method's options name it as method.type, e.g. {type: lora, lora: {r: 8}}", param="method")
        return section
    if kind not in method_names():
        raise JobSpecError(f"method.type: unknown method '{kind}'; expected {SUPERVISED} or one of "
                           f"{', '.join(method_names())}", param="method.type")
    if section.get("name", kind) != kind:
        raise JobSpecError(f"method.type is '{kind}' but tunesmith.method.name is '{section['name']}'; give one",
                           param="method.type")
    return {**section, **options, "name": kind}
