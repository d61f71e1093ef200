"""Which model family a `model:` names, from its files alone (nothing is loaded): methods belong to one family."""

from __future__ import annotations

from pathlib import Path

from tunesmith.models.diffusion_tiny import TINY_ALIAS

# A diffusers pipeline folder has model_index.json; a single-file Stable Diffusion checkpoint is one
# .safetensors/.ckpt file. Language models are HF folders, .gguf files, the embedded alias or hub ids.
DIFFUSION_FILE_SUFFIXES = (".safetensors", ".ckpt")


def model_family(spec: str) -> str:
    if spec == TINY_ALIAS:
        return "diffusion"
    path = Path(spec).expanduser()
    if (path / "model_index.json").is_file() or (path.is_file() and path.suffix in DIFFUSION_FILE_SUFFIXES):
        return "diffusion"
    return "llm"


def run_family(run_dir: str | Path) -> str:
    """The family of a run folder's model, from its config.yaml ("llm" when there is none: the LLM loaders then
    say what is missing)."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return "llm"
    model = (yaml.safe_load(path.read_text()) or {}).get("model")
    return model_family(model) if isinstance(model, str) else "llm"
