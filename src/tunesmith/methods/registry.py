"""The method registry: every method is one registered `Method`, in the spirit of peft's register_peft_method.

A method's module holds its options schema (the `method:` section), its default learning rate, how it is applied
to a freshly loaded model, what it saves, and which speed tricks apply. The config schema, `tunesmith methods`,
the memory plan, the method trials and the pipelines read everything from here, so adding a method is one new
module (registered in its family's package) and its tests. Methods are keyed by (family, name): both families
have a `lora`, and the config's `method:` section takes the methods of the family of its `model:`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Callable, Union

from pydantic import BaseModel, Field

from tunesmith.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from torch import nn

FAMILIES = {"llm": "language model", "diffusion": "diffusion model"}


def never(options) -> bool:
    return False


def always(options) -> bool:
    return True


@dataclass(frozen=True)
class Method:
    name: str
    family: str  # a key of FAMILIES
    options: type[BaseModel]  # the `method:` section; its `name` field is Literal[name]
    learning_rate: float  # training.learning_rate when the config gives none
    summary: str  # what trains, for `tunesmith methods` and the docs
    # (model, options, tokenizer_path) -> the model to train; the model comes from models.load.load_model_for_method
    apply: Callable[["nn.Module", BaseModel, "Path | None"], "nn.Module"]
    saves: str  # "adapter": a PEFT adapter folder over the base; "model": a whole model folder
    # Frozen nn.Linear weights may be kept in the autocast dtype while training (methods/frozen_precision.py).
    fast_frozen_weights: Callable[[BaseModel], bool] = never
    quantized_base: Callable[[BaseModel], bool] = never  # the base is loaded quantised (bitsandbytes)
    gradient_checkpointing: bool = True  # False where activation checkpointing breaks the method
    trial_knobs: tuple[str, ...] = ()  # options of the user's method a method trial carries over

    @property
    def is_adapter(self) -> bool:
        return self.saves == "adapter"


_METHODS: dict[tuple[str, str], Method] = {}  # (family, name): both families have a `lora`
_BY_OPTIONS: dict[type, Method] = {}  # a validated `method:` section's class names its method


def register(method: Method) -> Method:
    if method.family not in FAMILIES:
        raise ValueError(f"method {method.name}: unknown family {method.family!r}")
    key = (method.family, method.name)
    if _METHODS.get(key, method) is not method or _BY_OPTIONS.get(method.options, method) is not method:
        raise ValueError(f"{FAMILIES[method.family]} method {method.name!r} (or its options class) is already "
                         "registered")
    _METHODS[key] = _BY_OPTIONS[method.options] = method
    return method


def get(name: str, family: str = "llm") -> Method:
    _load_builtin()
    if (family, name) not in _METHODS:
        raise ConfigError(f"method.name: unknown method '{name}'; expected one of {', '.join(names(family))}")
    return _METHODS[(family, name)]


def of(options) -> Method:
    """The registered method of a validated `method:` section."""
    _load_builtin()
    return _BY_OPTIONS[type(options)]


def methods(family: str | None = "llm") -> list[Method]:
    """The methods of `family` in registration order (None: every family's)."""
    _load_builtin()
    return [m for m in _METHODS.values() if family is None or m.family == family]


def names(family: str | None = "llm") -> list[str]:
    return [m.name for m in methods(family)]


def tag(method: Method) -> str:
    """The method's tag in the config schema's union: unique across families ("diffusion:lora")."""
    return f"{method.family}:{method.name}"


def options_union(family: str = "llm"):
    """One family's `method:` section type: a union of its methods' options, tagged by `name`."""
    models = tuple(m.options for m in methods(family))
    return Annotated[Union[models], Field(discriminator="name")]


def check_family(method: Method, model_family: str, model: str) -> None:
    """A method of another family than the model's is a config mistake, named as such."""
    if method.family == model_family:
        return
    raise ConfigError(f"method.name: {other_family(method.name, method.family, model_family, model)}")


def other_family(name: str, method_family: str, model_family: str, model: str) -> str:
    """Why `name` (a `method_family` method) cannot train `model`, and what can."""
    available = names(model_family)
    choice = (f"use one of {', '.join(available)}" if available
              else f"this version has no {FAMILIES[model_family]} methods")
    return f"{name} is a {FAMILIES[method_family]} method, but {model} is a {FAMILIES[model_family]}; {choice}"


def _load_builtin() -> None:
    import tunesmith.methods.llm  # noqa: F401  isort: skip  (registers the language-model methods)
    import tunesmith.methods.diffusion  # noqa: F401  isort: skip  (registers the diffusion-model methods)
