"""Resolve `model:` (embedded alias, HF folder, .gguf file, cached hub id) and load it safely.

Weights are read only from safetensors or GGUF; pickle files (.bin/.pt/.pth/.ckpt) can execute code when loaded,
so a folder (model or adapter) whose weights are only in pickles is refused unless the user passes --allow-pickle;
next to safetensors weights they are never opened (transformers and PEFT are told to read safetensors). Even with
--allow-pickle they are read by torch's weights-only unpickler, which refuses a file asking to run code. A folder
whose model or tokenizer class exists only as Python code beside it (`auto_map`) is refused unless
`trust_remote_code: true`, since loading it would run that code.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tunesmith.methods import registry
from tunesmith.errors import ModelError
from tunesmith.cache import cache_root
from tunesmith.models.embedded import EMBEDDED_ALIAS, convert_gguf, embedded_model_dir
from tunesmith.models.quantize import bnb_config

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


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
    """Whether the folder's weights must be read from pickle files (only with allow_pickle)."""
    if not (folder / "config.json").is_file():
        raise ModelError(f"{spec}: no config.json; expected a Hugging Face model folder (config.json + *.safetensors)")
    return _pickle_only(folder, spec, allow_pickle)


def check_adapter_folder(folder: Path, allow_pickle: bool = False) -> bool:
    """A PEFT adapter folder (a run's adapter/, or `init_adapter:`): whether its weights are only in a pickle
    (PEFT falls back to adapter_model.bin), refused unless allow_pickle."""
    if not (folder / "adapter_config.json").is_file():
        raise ModelError(f"{folder}: no adapter_config.json; expected a PEFT adapter folder "
                         "(adapter_config.json + adapter_model.safetensors)")
    return _pickle_only(folder, str(folder), allow_pickle)


def _pickle_only(folder: Path, spec: str, allow_pickle: bool) -> bool:
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


def check_remote_code(source: ModelSource, trust_remote_code: bool) -> None:
    """Refuse, unless trusted, a folder whose classes exist only as Python files in it: transformers would have to
    run them. An `auto_map` next to a model type and tokenizer class transformers knows is ignored by transformers
    (it uses its own classes), so such folders load."""
    if trust_remote_code:
        return
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.tokenization_auto import tokenizer_class_from_name

    config, tokenizer = (_json_file(source.folder / name) for name in ("config.json", "tokenizer_config.json"))
    needs_code = {
        "config.json": config.get("auto_map") and config.get("model_type") not in CONFIG_MAPPING,
        "tokenizer_config.json": "AutoTokenizer" in (tokenizer.get("auto_map") or {})
        and tokenizer_class_from_name(str(tokenizer.get("tokenizer_class"))) is None,
    }
    for name, needed in needs_code.items():
        if needed:
            auto_map = (config if name == "config.json" else tokenizer)["auto_map"]
            raise ModelError(
                f"{source.spec}: its {name} maps its classes to Python code in the model folder "
                f"({', '.join(_code_files(auto_map))}) that transformers would have to run to load it; tunesmith runs "
                "no model code unless the config says trust_remote_code: true, so read that code before you set it"
            )


def _json_file(path: Path) -> dict:
    try:
        loaded = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        raise ModelError(f"{path}: not valid JSON") from None
    return loaded if isinstance(loaded, dict) else {}


def _code_files(auto_map: dict) -> list[str]:
    """'modeling_x.Cls' (or 'other/repo--modeling_x.Cls', or [slow, fast] for tokenizers) -> 'modeling_x.py'."""
    refs = [ref for value in auto_map.values() for ref in (value if isinstance(value, list) else [value]) if ref]
    return sorted({ref.split("--")[-1].rsplit(".", 1)[0] + ".py" for ref in refs})


def load_tokenizer(source: ModelSource, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    check_remote_code(source, trust_remote_code)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.folder, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:  # transformers' words for "no tokenizer files here" are a traceback
        said = " ".join(str(error).split()) or type(error).__name__  # its numbered list, on one line
        raise ModelError(
            f"{source.folder}: no tokenizer could be loaded from it ({said}); a model folder needs its "
            "tokenizer files beside config.json (tokenizer.json, or tokenizer_config.json and the vocabulary files "
            "it names): copy them from where the model came from"
        ) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(source: ModelSource, trust_remote_code: bool = False, **kwargs):
    """Load fp32 master weights; mixed precision is applied by the training loop via autocast."""
    import torch
    from transformers import AutoModelForCausalLM

    check_remote_code(source, trust_remote_code)
    kwargs.setdefault("dtype", torch.float32)
    # transformers >= 5.25 kernelizes what it loads unless told not to: it fetches layer code from the Hugging Face
    # Hub (tunesmith runs locally, no code it did not ship) and kernelizes again on every train() and eval(), which
    # puts the class's forward back over the training-only forwards a run swaps in (llama_code.forward_swapped).
    kwargs.setdefault("use_kernels", False)
    with weights_only_refusal(source.spec):
        return AutoModelForCausalLM.from_pretrained(
            source.folder,
            trust_remote_code=trust_remote_code,
            use_safetensors=not source.uses_pickle,
            **kwargs,
        )


def scratch_causal_lm(source: ModelSource, trust_remote_code: bool = False):
    """The model's architecture (its config.json) with random fp32 weights: the from-scratch baseline."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    check_remote_code(source, trust_remote_code)
    config = AutoConfig.from_pretrained(source.folder, trust_remote_code=trust_remote_code)
    return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code, dtype=torch.float32)


def load_adapter(model, folder: Path, allow_pickle: bool = False, is_trainable: bool = False):
    """`model` with the PEFT adapter in `folder` (a run's adapter/, or `init_adapter:`), read from safetensors
    unless allow_pickle."""
    from peft import PeftModel

    check_adapter_folder(Path(folder), allow_pickle)
    with weights_only_refusal(str(folder)):
        return PeftModel.from_pretrained(model, folder, is_trainable=is_trainable)


@contextmanager
def weights_only_refusal(spec: str):
    """transformers, PEFT and diffusers read pickles with torch's weights-only unpickler; say its refusal in one
    sentence (instead of torch's text, which offers unsafe loading, or a library's "Unable to load weights")."""
    try:
        yield
    except Exception as error:
        if not _unpickler_refused(error):
            raise
        raise ModelError(
            f"{spec}: its pickle weights ask to run code or build objects other than tensors, which tunesmith's "
            "weights-only loader refuses even with --allow-pickle; convert them to safetensors where you trust them"
        ) from None


def _unpickler_refused(error: BaseException | None) -> bool:
    """Whether the weights-only unpickler's UnpicklingError is this error or one it was raised from or during
    (diffusers re-raises it as an OSError while handling it)."""
    while error is not None:
        if isinstance(error, pickle.UnpicklingError):
            return True
        error = error.__cause__ or error.__context__
    return False


def load_model_for_method(
    source: ModelSource, method, trust_remote_code: bool = False, device="cpu", mixed_precision: str = "no",
    scratch: bool = False,
):
    """The base model the method trains, on `device`: quantised at load time for qlora, fp32 otherwise.

    `mixed_precision` is accelerate's resolved value ('no', 'bf16', 'fp16'); qlora's compute_dtype 'auto'
    follows it. `scratch`: the same architecture with freshly initialised weights (seeded by the caller).
    """
    if scratch:
        return scratch_causal_lm(source, trust_remote_code).to(device)
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
    allowed = allow_pickle or config.allow_pickle
    if (run_dir / "adapter").is_dir():
        source = resolve_model(config.model, allowed)
        check_adapter_folder(run_dir / "adapter", allowed)  # before the base is loaded: refuse early
        # A qlora adapter is loaded onto the base quantised as in training, so outputs match the evaluated run.
        base = load_model_for_method(source, config.method, config.trust_remote_code)
        model = load_adapter(base, run_dir / "adapter", allowed)
        tokenizer_dir = run_dir / "adapter"
    elif (run_dir / "model").is_dir():
        source = resolve_model(str(run_dir / "model"), allowed)
        model = load_causal_lm(source, config.trust_remote_code)
        tokenizer_dir = run_dir / "model"
    else:
        raise ModelError(f"{run_dir}: training has not finished (no adapter/ or model/ folder); resume it first")
    tokenizer = load_tokenizer(ModelSource(str(tokenizer_dir), tokenizer_dir))
    return model.eval(), tokenizer
