"""A job request in the OpenAI shape, and the tunesmith RunConfig it becomes.

`method` is OpenAI's `{type: supervised, supervised: {hyperparameters: {...}}}`, where `type` may also name a
tunesmith method of the base model's family (`{type: lora, lora: {hyperparameters: {...}, r: 8}}`: options beside
the hyperparameters go to the method section; `dreambooth_lora` for a Stable Diffusion base). `tunesmith` carries
further config sections (training, data options, method, distributed; eval and refine for language models,
validation for diffusion). The server owns the model, data paths and output folder, and the keys that would read
or run files on the server, so a request can never name a path. `distributed.processes` is the service's own key:
how many processes (one per GPU) the job trains on.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from tunesmith.errors import ConfigError, TunesmithError

SUPERVISED = "supervised"
# What the `tunesmith` extension may set, by the base model's family: an allowlist, so a config key added later
# that names a file (or runs code) is refused until someone decides it is safe on a server. The model, data paths
# and output are the server's.
COMMON_SECTIONS = ("method", "training", "data", "distributed")
EXTENSION_SECTIONS = {"llm": (*COMMON_SECTIONS, "eval", "refine"), "diffusion": (*COMMON_SECTIONS, "validation")}
EXTENSION_DATA_KEYS = {
    "llm": ("format", "max_length", "validation_split"),
    "diffusion": ("instance_prompt", "class_prompt", "num_class_images", "class_inference_steps",
                  "class_guidance_scale", "resolution", "center_crop", "random_flip", "caption_dropout", "buckets",
                  "bucket_step", "min_bucket_side", "max_upscale", "min_size", "on_bad_image", "cache_latents"),
}
SERVER_KEYS = ("model", "output_dir", "init_adapter", "allow_pickle", "trust_remote_code")
SERVER_DATA_KEYS = {"llm": ("train", "validation", "test"),
                    "diffusion": ("images", "validation_images", "class_images")}
DATA_FILES = {"llm": "training_file and validation_file (file ids)",
              "diffusion": "training_file and validation_file (ids of image archives) and the server's class image "
                           "folder"}
PROCESSES = "processes"  # in `distributed`: read by the service, not part of the run's config
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
    tunesmith: dict[str, Any] | None = Field(None, description="further tunesmith config sections: method, "
                                             "training, data options, distributed (with `processes`), and eval and "
                                             "refine for a language model or validation for a diffusion model")

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


def method_names(family: str | None = "llm") -> list[str]:
    """The method names of a family (None: every family's, each once)."""
    from tunesmith.methods import registry

    return list(dict.fromkeys(registry.names(family)))


def run_config(method: dict, extension: dict | None, seed: int | None, *, base_model: str, train: Path,
               validation: Path | None, output_dir: Path, class_images: Path | None = None,
               check_paths: bool = True):
    """The RunConfig a job trains; JobSpecError (with the request parameter to blame) for a bad request.

    `train`/`validation` are files for a language model and image folders for a diffusion model, whose DreamBooth
    class images are drawn into (and reused from) `class_images`. `check_paths=False` builds it before the data
    is looked up (to refuse a bad request at once)."""
    from tunesmith.config.load import build_config
    from tunesmith.models.family import model_family

    family = model_family(base_model)
    request = MethodRequest.model_validate(method)
    options = request.options()
    hyper = Hyperparameters.model_validate(options.pop("hyperparameters", None) or {})
    raw = _extension(extension, family)
    section = _method_section(request.type, options, dict(raw.get("method") or {}), family)
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
    raw["data"] = {**(raw.get("data") or {}), **_data_paths(family, raw.get("data") or {}, train, validation,
                                                          class_images)}
    raw.update(model=base_model, output_dir=str(output_dir))
    try:
        config = build_config(raw, source="request", check_paths=check_paths)
        if hyper.learning_rate_multiplier != "auto":  # of the method's (or the config's) learning rate
            if config.training.learning_rate == "auto":
                raise ConfigError("learning_rate_multiplier multiplies a learning rate, but the tunesmith config "
                                  "sets training.learning_rate: auto (a range test picks it); drop one of them")
            config.training.learning_rate = config.training.learning_rate * hyper.learning_rate_multiplier
    except ConfigError as error:
        raise JobSpecError(str(error), param="tunesmith") from None
    return config


def job_config(settings, job, base_model: str, train: Path, validation: Path | None, check_paths: bool = True):
    """The RunConfig of a stored job (or one about to be stored), with the server's paths for it."""
    return run_config(job.method, job.extension, job.seed, base_model=base_model, train=train, validation=validation,
                      output_dir=settings.runs_dir / job.id, class_images=settings.class_images_for(job.tenant_seq),
                      check_paths=check_paths)


def resolved_hyperparameters(config) -> dict:
    """What `auto` became, shown on the job like OpenAI does once a job is validated."""
    from tunesmith.methods import registry

    default, rate = registry.of(config.method).learning_rate, config.training.learning_rate
    epochs = config.training.epochs
    return {"n_epochs": int(epochs) if epochs == int(epochs) else epochs, "batch_size": config.training.batch_size,
            "learning_rate_multiplier": "auto" if rate == "auto" else round(rate / default, 6)}


def job_processes(extension: dict | None, default: int, limit: int) -> int:
    """How many processes the job trains on: its `distributed.processes`, else the server's default; at most
    `limit` (the devices a worker has)."""
    asked = ((extension or {}).get("distributed") or {}).get(PROCESSES) if isinstance(extension, dict) else None
    if asked is None:
        return default
    param = f"tunesmith.distributed.{PROCESSES}"
    if isinstance(asked, bool) or not isinstance(asked, int) or asked < 1:
        raise JobSpecError(f"{param}: {asked!r} is not a whole number of processes (1 or more)", param=param)
    if asked > limit:
        raise JobSpecError(f"{param}: {asked} processes, but this server runs a job on at most {limit}", param=param)
    return asked


def _data_paths(family: str, data: dict, train: Path, validation: Path | None, class_images: Path | None) -> dict:
    if family == "llm":
        return {"train": str(train), **({"validation": str(validation)} if validation else {})}
    paths = {"images": str(train), **({"validation_images": str(validation)} if validation else {})}
    if data.get("class_prompt") is not None and class_images is not None:  # only prior preservation draws them
        paths["class_images"] = str(class_images)
    return paths


def chosen_hyperparameters(current: dict, event: dict, config) -> dict | None:
    """`current` with what a run's event settles about an `auto` hyperparameter (None: nothing): the rate the
    range test chose, the step's batch once training starts, and the micro-batches an out-of-memory step cut
    it into."""
    from tunesmith.methods import registry

    kind = event.get("type")
    if kind == "learning_rate_chosen":
        rate = event["rate"]
        return {**current, "learning_rate": rate,
                "learning_rate_multiplier": round(rate / registry.of(config.method).learning_rate, 6)}
    if kind == "training_started" and current.get("batch_size") == "auto":
        return {**current, "batch_size": config.training.examples_per_batch}
    if kind == "batch_size_reduced":
        return {**current, "micro_batch_size": event["micro_batch"],
                "gradient_accumulation": event["gradient_accumulation"]}
    return None


def _extension(extension: dict | None, family: str) -> dict:
    raw = copy.deepcopy(extension or {})
    sections = EXTENSION_SECTIONS[family]
    for key in raw:
        if key in SERVER_KEYS:
            where = "the request's model field" if key == "model" else "the server"
            raise JobSpecError(f"tunesmith.{key}: set by {where}, not by the config", param=f"tunesmith.{key}")
        if key not in sections:
            raise JobSpecError(f"tunesmith.{key}: not accepted in a job on a {_family_name(family)}; the "
                               f"sections it may set are {', '.join(sections)}", param=f"tunesmith.{key}")
    for name in ("data", "distributed"):
        if raw.get(name) is not None and not isinstance(raw[name], dict):
            raise JobSpecError(f"tunesmith.{name}: must be an object", param=f"tunesmith.{name}")
    if raw.get("distributed"):
        raw["distributed"].pop(PROCESSES, None)
    for key in raw.get("data") or {}:
        if key in SERVER_DATA_KEYS[family]:
            raise JobSpecError(f"tunesmith.data.{key}: data comes from {DATA_FILES[family]}",
                               param=f"tunesmith.data.{key}")
        if key not in EXTENSION_DATA_KEYS[family]:
            raise JobSpecError(f"tunesmith.data.{key}: not accepted in a job on a {_family_name(family)}; it may "
                               f"set {', '.join(EXTENSION_DATA_KEYS[family])}", param=f"tunesmith.data.{key}")
    return raw


def _family_name(family: str) -> str:
    from tunesmith.methods.registry import FAMILIES

    return FAMILIES[family]


def _method_section(kind: str, options: dict, section: dict, family: str) -> dict:
    if kind == SUPERVISED:
        if options:
            raise JobSpecError(
                f"method.supervised takes only hyperparameters (got {', '.join(sorted(options))}); to set a "
                "method's options name it as method.type, e.g. {type: lora, lora: {r: 8}}", param="method")
        return section
    if kind not in method_names(family):
        raise JobSpecError(f"method.type: unknown {_family_name(family)} method '{kind}'; expected {SUPERVISED} "
                           f"or one of {', '.join(method_names(family))}", param="method.type")
    if section.get("name", kind) != kind:
        raise JobSpecError(f"method.type is '{kind}' but tunesmith.method.name is '{section['name']}'; give one",
                           param="method.type")
    return {**section, **options, "name": kind}
