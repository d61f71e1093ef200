"""Which model family a `model:` names, from its files alone (nothing is loaded): methods belong to one family."""

from __future__ import annotations

from pathlib import Path

# A diffusers pipeline folder has model_index.json; a single-file Stable Diffusion checkpoint is one
# .safetensors/.ckpt file. Language models are HF folders, .gguf files, the embedded alias or hub ids.
DIFFUSION_FILE_SUFFIXES = (".safetensors", ".ckpt")


def model_family(spec: str) -> str:
    path = Path(spec).expanduser()
    if (path / "model_index.json").is_file() or (path.is_file() and path.suffix in DIFFUSION_FILE_SUFFIXES):
        return "diffusion"
    return "llm"
