"""Resolve `model:` (embedded alias, HF folder, .gguf file, cached hub id) and load it safely.

Weights are read only from safetensors or GGUF; pickle checkpoints can execute code when loaded, so a
folder that has only .bin/.pt/.ckpt weights is refused unless the user passes --allow-pickle.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from tunesmith.errors import ModelError
from tunesmith.cache import cache_root
from tunesmith.models.embedded import EMBEDDED_ALIAS, convert_gguf, embedded_model_dir
from tunesmith.methods import registry
from tunesmith.models.quantize import bnb_config

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass
class ModelSource:
    spec: str  # what the user wrote
    folder: Path  # a local HF-style folder with config, weights and tokenizer
    uses_pickle: bool = False


def resolve_model(spec: str, allow_pickle: bool = False) -> ModelSource:
    if spec == EMBEDDED_ALIAS:
        return ModelSource(spec, embedded_model_dir())
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"model file not found: {spec}")
        return ModelSource(spec, _gguf_cache(path))
    if path.is_dir():
        return ModelSource(spec, path, _check_weights(path, spec, allow_pickle))
    if spec.startswith((".", "/", "~")) or path.exists():
        raise ModelError(f"model folder not found: {spec} (expected a folder with config.json and *.safetensors)")
    return _from_hub_cache(spec, allow_pickle)


def _check_weights(folder: Path, spec: str, allow_pickle: bool) -> bool:
    if not (folder / "config.json").is_file():
        raise ModelError(f"{spec}: no config.json; expected a Hugging Face model folder (config.json + *.safetensors)")
    if any(folder.glob("*.safetensors")):
        return False
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if not pickles:
        raise ModelError(f"{spec}: no weights found; expected *.safetensors files in the folder")
    if not allow_pickle:
        raise ModelError(
            f"{spec}: weights are only in pickle files ({', '.join(pickles)}), which can run arbitrary code when "
            "loaded; convert them to safetensors, or pass --allow-pickle if you trust their source"
        )
    return True


def _gguf_cache(path: Path) -> Path:
    # Keyed by path, size and mtime: a replaced file converts again, an unchanged one is reused.
    stat = path.resolve().stat()
    key = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_root() / "models" / f"{path.stem}-{key}"
    if not (target / "model.safetensors").is_file():
        convert_gguf(path, target)
    return target


def _from_hub_cache(spec: str, allow_pickle: bool) -> ModelSource:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(spec, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError):
        raise ModelError(
            f"model '{spec}' is not '{EMBEDDED_ALIAS}', a local folder, a .gguf file, or a hub id in the local "
            f"Hugging Face cache; download it once while online (hf download {spec}) or set model: to a folder"
        ) from None
    return ModelSource(spec, folder, _check_weights(folder, spec, allow_pickle))


def load_tokenizer(source: ModelSource, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.folder, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(source: ModelSource, trust_remote_code: bool = False, **kwargs):
    """Load fp32 master weights; mixed precision is applied by the training loop via autocast."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs.setdefault("dtype", torch.float32)
    return AutoModelForCausalLM.from_pretrained(
        source.folder,
        trust_remote_code=trust_remote_code,
        use_safetensors=not source.uses_pickle,
        **kwargs,
    )


def load_model_for_method(
    source: ModelSource, method, trust_remote_code: bool = False, device="cpu", mixed_precision: str = "no"
):
    """The base model the method trains, on `device`: quantised at load time for qlora, fp32 otherwise.

    `mixed_precision` is accelerate's resolved value ('no', 'bf16', 'fp16'); qlora's compute_dtype 'auto'
    follows it.
    """
    if not registry.of(method).quantized_base(method):
        return load_causal_lm(source, trust_remote_code).to(device)
    # Quantising while loading never holds the whole model in full precision; device_map quantises each
    # weight directly on the device it trains on.
    return load_causal_lm(
        source, trust_remote_code, quantization_config=bnb_config(method, mixed_precision), device_map={"": device}
    )


def load_trained(run_dir: Path, allow_pickle: bool = False):
    """(model, tokenizer) of a finished run: base + PEFT adapter, or the saved full model."""
    from tunesmith.config.load import load_config

    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ModelError(f"{run_dir}: not a run folder (no config.yaml); pass the output_dir of a training run")
    config = load_config(config_path)
    if (run_dir / "adapter").is_dir():
        from peft import PeftModel

        source = resolve_model(config.model, allow_pickle or config.allow_pickle)
        # A qlora adapter is loaded onto the base quantised as in training, so outputs match the evaluated run.
        base = load_model_for_method(source, config.method, config.trust_remote_code)
        model = PeftModel.from_pretrained(base, run_dir / "adapter")
        tokenizer_dir = run_dir / "adapter"
    elif (run_dir / "model").is_dir():
        source = ModelSource(str(run_dir / "model"), run_dir / "model")
        model = load_causal_lm(source, config.trust_remote_code)
        tokenizer_dir = run_dir / "model"
    else:
        raise ModelError(f"{run_dir}: training has not finished (no adapter/ or model/ folder); resume it first")
    tokenizer = load_tokenizer(ModelSource(str(tokenizer_dir), tokenizer_dir))
    return model.eval(), tokenizer
