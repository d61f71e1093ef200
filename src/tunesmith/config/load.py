"""Load a YAML file into a `RunConfig`, apply `--set key.path=value` overrides, and explain mistakes.

Relative data paths (also in stages) are resolved against the config file's folder, where the data
usually sits; `output_dir` and `init_adapter` stay relative to where the command runs, like other run
products.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from tunesmith.config.diffusion import RULE_ERROR, VALUE_ERROR
from tunesmith.config.schema import DATA_SECTIONS, EMBEDDED_DEFAULT, RunConfig, method_sections
from tunesmith.errors import ConfigError
from tunesmith.methods import registry

DEFAULT_METHOD = "lora"

# Paths under data: (language-model files, diffusion image folders), resolved against the config's folder.
DATA_PATH_KEYS = ("train", "validation", "test", "images", "class_images", "validation_images")


def load_config(path: str | Path, overrides=()) -> RunConfig:
    """`overrides`: "key=value" strings as --set takes them, or a mapping of dotted keys to values."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys (model, data, method, ...)")
    apply_overrides(raw, overrides)
    _resolve_data_paths(raw, path.parent)
    return build_config(raw, source=str(path))


def build_config(raw: dict, source: str = "config", check_paths: bool = True) -> RunConfig:
    """`check_paths=False` reads a finished run's config whose training images may have moved since."""
    if isinstance(raw.get("method"), dict) and "name" not in raw["method"]:
        raw = {**raw, "method": {"name": DEFAULT_METHOD, **raw["method"]}}
    try:
        return RunConfig.model_validate(raw, context={"check_paths": check_paths})
    except ValidationError as exc:
        raise ConfigError(explain(exc, source, raw)) from None


def apply_overrides(raw: dict, overrides) -> None:
    if isinstance(overrides, dict):
        for key, value in overrides.items():
            set_key(raw, key, value)
    else:
        for item in overrides:
            apply_override(raw, item)


def apply_override(raw: dict, item: str) -> None:
    """Apply one `a.b.c=value`; the value is parsed as YAML so numbers, booleans and lists get their types."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set training.epochs=2")
    set_key(raw, key.strip(), yaml.safe_load(value) if value.strip() else None)


def set_key(raw: dict, key: str, value: Any) -> None:
    """Set a dotted key (`training.epochs`) in raw config data, creating sections on the way."""
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key!r}: '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def _resolve_data_paths(raw: dict, base: Path) -> None:
    stages = raw.get("stages") if isinstance(raw.get("stages"), list) else []
    for section in [raw, *stages]:
        data = section.get("data") if isinstance(section, dict) else None
        if not isinstance(data, dict):
            continue
        for key in DATA_PATH_KEYS:
            if key in data:
                data[key] = _resolved(data[key], base)
        prepare = data.get("prepare")
        if isinstance(prepare, dict):  # the files data.prepare merges in are the user's data too
            prepare["feedback"] = _resolved(prepare.get("feedback"), base)
            for source in prepare.get("sources") or []:
                if isinstance(source, dict):
                    source["path"] = _resolved(source.get("path"), base)


def _resolved(value, base: Path):
    if isinstance(value, str) and not Path(value).is_absolute():
        return str((base / value).resolve())
    return value


def save_config(config: RunConfig, path: Path) -> None:
    from tunesmith.provenance import config_text

    Path(path).write_text(config_text(config))


def explain(exc: ValidationError, source: str, raw: dict | None = None) -> str:
    """Turn pydantic's errors into lines that name the key path and what would be right."""
    methods = method_sections()
    model = (raw or {}).get("model", EMBEDDED_DEFAULT)
    lines = [f"{source}: invalid configuration"]
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        key = ".".join(_user_path(loc, methods))
        kind = error["type"]
        if kind == "extra_forbidden":
            lines.append(f"  {key}: unknown key{_other_method_hint(loc, methods) or _suggestion(loc, methods)}")
        elif not loc or kind == RULE_ERROR:  # a rule across sections: the message says which keys
            lines.append(f"  {error['msg'].removeprefix('Value error, ')}")
        elif kind == VALUE_ERROR:
            lines.append(f"  {key}: {error['msg']}")
        elif kind == "missing":
            lines.append(f"  {key}: required key is missing")
        elif kind == "union_tag_invalid" and loc == ["method"]:
            lines.append(f"  {key}.name: {_unknown_method(error['ctx']['tag'], model)}")
        else:
            lines.append(f"  {key}: {error['msg'][0].lower()}{error['msg'][1:]} (got {error.get('input')!r})")
    return "\n".join(lines)


def _unknown_method(tag: str, model) -> str:
    """`tag` is "family:name"; a name of another family is named as that family's method."""
    family, _, name = tag.partition(":")
    owners = [other for other in registry.FAMILIES if other != family and name in registry.names(other)]
    if owners:
        return registry.other_family(name, owners[0], family, str(model))
    return f"unknown method '{name}'; expected one of {', '.join(registry.names(family))}"


def _tagged(loc: list[str], methods: dict) -> bool:
    """Whether loc[1] is a union tag pydantic put after `method` or `data` (users never write it)."""
    if len(loc) < 2:
        return False
    return (loc[0] == "method" and loc[1] in methods) or (loc[0] == "data" and loc[1] in DATA_SECTIONS)


def _user_path(loc: list[str], methods: dict) -> list[str]:
    return [loc[0], *loc[2:]] if _tagged(loc, methods) else loc


def _other_method_hint(loc: list[str], methods: dict) -> str:
    """`bits` on lora: say which methods (of the same family) take that key instead of guessing a near spelling."""
    if len(loc) != 3 or loc[0] != "method" or loc[1] not in methods:
        return ""
    family, _, name = loc[1].partition(":")
    owners = [m.name for m in registry.methods(family) if loc[2] in m.options.model_fields]
    return f" for method {name}; it is an option of {', '.join(owners)}" if owners else ""


def _suggestion(loc: list[str], methods: dict) -> str:
    valid = _valid_keys(loc[:-1], methods)
    close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.6)
    prefix = _user_path(loc[:-1], methods)
    if close:
        return f"; did you mean '{'.'.join(prefix + close)}'?"
    return f"; valid keys here: {', '.join(sorted(valid))}" if valid else ""


def _section_model(annotation) -> type[BaseModel] | None:
    """The section model of a field typed `Section` or `Section | None`."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _valid_keys(parent: list[str], methods: dict) -> list[str]:
    """Keys accepted at a pydantic location; after `method` or `data`, pydantic puts the union's tag, which picks
    the section's model."""
    model: type[BaseModel] | None = RunConfig
    for i, part in enumerate(parent):
        if i == 1 and _tagged(parent, methods):
            model = methods[part] if parent[0] == "method" else DATA_SECTIONS[part]
        elif not (i == 0 and _tagged(parent, methods)):
            field = model.model_fields.get(part)
            model = _section_model(field.annotation) if field else None
            if model is None:
                return []
    return list(model.model_fields)
