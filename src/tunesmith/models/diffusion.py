"""Load a Stable Diffusion base model offline: a diffusers folder, or a single-file SD 1.x / 2.x / SDXL checkpoint.

A single-file checkpoint holds weights only. diffusers' `from_single_file` would fetch the component configs and
tokenizers from the hub; tunesmith passes `config=` a folder it ships (diffusion_configs/, written from the
published SD 1.5, SD 2.1 768-v and SDXL base architectures) and tokenizers it builds from the CLIP BPE vocabulary it
ships, so nothing is downloaded. A checkpoint with another architecture needs `config=` a diffusers folder of its own.
Pickle checkpoints (.ckpt/.pt/.bin) are read only with allow_pickle, and then only by torch's weights-only unpickler.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.errors import ModelError

CONFIG_ROOT = Path(__file__).with_name("diffusion_configs")
BPE_FILE = CONFIG_ROOT / "clip_tokenizer" / "bpe_simple_vocab_16e6.txt.gz"
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
PREDICTION_TYPES = ("epsilon", "v_prediction")
SAMPLE_BYTES = 1 << 20  # fingerprint reads this much from each end of a weights file, not the whole file


@dataclass(frozen=True)
class Family:
    name: str  # "sd1" | "sd2" | "sdxl"
    label: str
    configs: str  # shipped config folder under diffusion_configs/
    pipeline: str  # diffusers pipeline class
    pad_tokens: tuple[str, ...]  # one per tokenizer: OpenCLIP towers pad with "!", OpenAI CLIP with <|endoftext|>
    resolution: int  # what the family was trained at


FAMILIES = {
    "sd1": Family("sd1", "SD 1.x", "sd15", "StableDiffusionPipeline", ("<|endoftext|>",), 512),
    "sd2": Family("sd2", "SD 2.x", "sd21", "StableDiffusionPipeline", ("!",), 768),
    "sdxl": Family("sdxl", "SDXL", "sdxl", "StableDiffusionXLPipeline", ("<|endoftext|>", "!"), 1024),
}
TOKENIZER_NAMES = ("tokenizer", "tokenizer_2")

# The text encoder's key prefix tells the family in every original-layout checkpoint: SD 1.x keeps OpenAI CLIP
# under cond_stage_model.transformer, SD 2.x OpenCLIP under cond_stage_model.model, SDXL two embedders.
FAMILY_MARKERS = (
    ("conditioner.embedders.1.model.", "sdxl"),
    ("cond_stage_model.model.", "sd2"),
    ("cond_stage_model.transformer.", "sd1"),
)
UNET_INPUT_KEY = "model.diffusion_model.input_blocks.0.0.weight"


@dataclass
class DiffusionModel:
    pipeline: Any  # StableDiffusionPipeline | StableDiffusionXLPipeline
    family: Family
    prediction_type: str  # what the UNet predicts: "epsilon" or "v_prediction"
    fingerprint: str  # identifies the weights (class images and latent caches are keyed by it)
    source: Path


def load_diffusion(spec: str | Path, allow_pickle: bool = False, config: str | Path | None = None,
                   prediction_type: str | None = None, dtype=None) -> DiffusionModel:
    """Load `spec` (diffusers folder, single file, or the tiny alias) as a pipeline on the CPU, in eval mode, fp32
    unless `dtype`."""
    import torch

    from tunesmith.models.diffusion_tiny import TINY_ALIAS, tiny_pipeline_dir

    path = tiny_pipeline_dir() if str(spec) == TINY_ALIAS else Path(spec).expanduser()
    if prediction_type is not None and prediction_type not in PREDICTION_TYPES:
        raise ModelError(f"prediction_type: '{prediction_type}' is not one of {', '.join(PREDICTION_TYPES)}")
    if not path.exists():
        raise ModelError(f"model not found: {spec} (expected a diffusers folder or a .safetensors checkpoint)")
    with quiet_progress():
        if path.is_dir():
            pipeline = _load_folder(path, allow_pickle, dtype or torch.float32)
            family = family_of_pipeline(pipeline)
        else:
            family, pipeline = _load_single_file(path, allow_pickle, config, dtype or torch.float32)
    if prediction_type and prediction_type != pipeline.scheduler.config.prediction_type:
        pipeline.scheduler = type(pipeline.scheduler).from_config(pipeline.scheduler.config,
                                                                  prediction_type=prediction_type)
    pipeline.set_progress_bar_config(disable=True)
    return DiffusionModel(pipeline, family, pipeline.scheduler.config.prediction_type, model_fingerprint(path), path)


@contextlib.contextmanager
def quiet_progress():
    """No diffusers / transformers progress bars while pipelines load or save (the run prints its own lines)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    libraries = [library for library in (diffusers_logging, transformers_logging) if library.is_progress_bar_enabled()]
    for library in libraries:
        library.disable_progress_bar()
    try:
        yield
    finally:
        for library in libraries:
            library.enable_progress_bar()


def family_of_pipeline(pipeline) -> Family:
    if type(pipeline).__name__.startswith("StableDiffusionXL"):
        return FAMILIES["sdxl"]
    # OpenCLIP text towers (SD 2.x) use exact GELU; OpenAI's CLIP (SD 1.x) uses quick_gelu.
    return FAMILIES["sd2" if pipeline.text_encoder.config.hidden_act == "gelu" else "sd1"]


def detect_family(keys, source: str = "checkpoint") -> Family:
    """The family of an original-layout (A1111/ComfyUI) checkpoint, from its key names alone."""
    keys = list(keys)
    for prefix, name in FAMILY_MARKERS:
        if any(key.startswith(prefix) for key in keys):
            return FAMILIES[name]
    if any(key.startswith("conditioner.embedders.0.model.") for key in keys):
        raise ModelError(f"{source}: this is an SDXL refiner checkpoint; tunesmith trains SDXL base, SD 1.x and 2.x")
    if any(key.startswith(("down_blocks.", "unet.", "lora_")) for key in keys):
        raise ModelError(f"{source}: this holds diffusers-named or LoRA weights, not a full single-file checkpoint; "
                         "point model: at the diffusers folder instead")
    raise ModelError(f"{source}: not a Stable Diffusion 1.x / 2.x / SDXL checkpoint (no text encoder weights under "
                     "cond_stage_model. or conditioner.embedders.)")


@functools.lru_cache(maxsize=1)
def _clip_vocabulary() -> tuple[dict[str, int], list[tuple[str, str]]]:
    # The same construction as OpenAI's CLIP tokenizer (and the vocab.json/merges.txt on the hub): 256 byte symbols,
    # the same with the end-of-word mark, one token per merge, then the two special tokens: 49408 in all.
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    if not BPE_FILE.is_file():
        raise ModelError(f"the CLIP tokenizer vocabulary is missing from the tunesmith install ({BPE_FILE}); "
                         "reinstall tunesmith, or load a diffusers folder, which carries its own tokenizer")
    lines = gzip.open(BPE_FILE, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def clip_tokenizer(pad_token: str = "<|endoftext|>"):
    """The CLIP tokenizer every SD text encoder uses, built from the shipped vocabulary (no files, no hub)."""
    from transformers import CLIPTokenizer

    vocab, merges = _clip_vocabulary()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), pad_token=pad_token, model_max_length=77)


def shipped_config(family: Family) -> Path:
    return CONFIG_ROOT / family.configs


def _load_folder(folder: Path, allow_pickle: bool, dtype):
    import diffusers

    from tunesmith.models.load import weights_only_refusal

    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise ModelError(f"{folder}: no model_index.json; expected a diffusers pipeline folder "
                         "(model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)")
    class_name = json.loads(index_file.read_text()).get("_class_name")
    if class_name not in {f.pipeline for f in FAMILIES.values()}:
        raise ModelError(f"{index_file}: _class_name '{class_name}' is not a Stable Diffusion 1.x/2.x or SDXL "
                         "pipeline (StableDiffusionPipeline or StableDiffusionXLPipeline)")
    weights = [p for p in folder.glob("*/*") if p.suffix in (".safetensors", *PICKLE_SUFFIXES)]
    pickles = sorted(str(p.relative_to(folder)) for p in weights if p.suffix in PICKLE_SUFFIXES)
    safe = any(p.suffix == ".safetensors" for p in weights)
    if pickles and not safe and not allow_pickle:
        raise ModelError(f"{folder}: weights are only in pickle files ({', '.join(pickles)}), which can run code "
                         "when loaded; convert them to safetensors, or pass --allow-pickle if you trust their source")
    try:
        with weights_only_refusal(str(folder)):
            return getattr(diffusers, class_name).from_pretrained(
                folder, local_files_only=True, use_safetensors=safe, dtype=dtype,
                **({"safety_checker": None, "requires_safety_checker": False}
                   if class_name == "StableDiffusionPipeline" else {}),
            )
    except (OSError, ValueError, KeyError) as error:
        raise ModelError(f"{folder}: could not load the diffusers pipeline: {_first_line(error)}") from None


def _load_single_file(path: Path, allow_pickle: bool, config, dtype) -> tuple[Family, Any]:
    import diffusers

    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise ModelError(f"{path}: a pickle checkpoint can run code when loaded; convert it to .safetensors, or pass "
                         "--allow-pickle if you trust its source")
    if suffix not in (".safetensors", *PICKLE_SUFFIXES):
        raise ModelError(f"{path}: expected a .safetensors checkpoint (or .ckpt with --allow-pickle), "
                         f"not a '{suffix or 'suffix-less'}' file")
    keys, unet_in = _checkpoint_keys(path)
    family = detect_family(keys, str(path))
    if unet_in not in (None, 4):
        raise ModelError(f"{path}: the UNet takes {unet_in} input channels (an inpainting or instruct model); "
                         "tunesmith trains text-to-image checkpoints with 4")
    config_dir = Path(config).expanduser() if config else shipped_config(family)
    if not (config_dir / "model_index.json").is_file():
        raise ModelError(f"config: {config_dir} has no model_index.json; expected a diffusers folder whose "
                         "unet/, vae/, text_encoder/ and scheduler/ configs describe this checkpoint")
    tokenizers = _missing_tokenizers(config_dir, family)
    pipeline_class = getattr(diffusers, family.pipeline)
    try:
        pipeline = pipeline_class.from_single_file(str(path), config=str(config_dir), local_files_only=True,
                                                   dtype=dtype, **tokenizers)
    except Exception as error:  # diffusers raises bare ValueError/RuntimeError/KeyError for a mismatched layout
        hint = "" if config else (f"; if it is not the standard {family.label} architecture, set config: to a "
                                  "diffusers folder whose configs describe it")
        if suffix in PICKLE_SUFFIXES and "weights_only" in str(error):
            hint = "; torch's safe unpickler refused it: convert the checkpoint to .safetensors"
        raise ModelError(f"{path}: could not load it as an {family.label} checkpoint: {_first_line(error)}{hint}") \
            from None
    return family, pipeline


def _missing_tokenizers(config_dir: Path, family: Family) -> dict:
    """Tokenizers the config folder lacks (the shipped ones never have any), built from the shipped vocabulary."""
    def has_files(name: str) -> bool:
        return any((config_dir / name / file).is_file() for file in ("vocab.json", "tokenizer.json"))

    return {name: clip_tokenizer(pad) for name, pad in zip(TOKENIZER_NAMES, family.pad_tokens) if not has_files(name)}


def _checkpoint_keys(path: Path) -> tuple[list[str], int | None]:
    """Key names and the UNet's input channels, without reading a safetensors file's tensors."""
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                keys = list(handle.keys())
                unet_in = handle.get_slice(UNET_INPUT_KEY).get_shape()[1] if UNET_INPUT_KEY in keys else None
        except Exception as error:  # safetensors raises its own SafetensorError for a damaged header
            raise ModelError(f"{path}: not a readable safetensors file ({_first_line(error)})") from None
        return keys, unet_in
    import torch

    from tunesmith.models.load import weights_only_refusal

    try:
        with weights_only_refusal(str(path)):
            state = torch.load(path, map_location="meta", weights_only=True, mmap=True)
    except ModelError:
        raise
    except Exception as error:
        raise ModelError(f"{path}: torch's safe unpickler could not read it ({_first_line(error)}); "
                         "convert the checkpoint to .safetensors") from None
    while isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    unet_in = state[UNET_INPUT_KEY].shape[1] if UNET_INPUT_KEY in state else None
    return list(state), unet_in


def model_fingerprint(path: Path) -> str:
    """A short id of the weights: sizes, safetensors headers and both ends of every weights file.

    Reading whole multi-GB files would cost seconds per run; ends and headers change whenever the weights do in
    practice, and a moved or renamed copy keeps its fingerprint (unlike a path/mtime key).
    """
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".json", *PICKLE_SUFFIXES)
                   and not p.name.startswith(".")) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(path) if path.is_dir() else ''}:{size}\0".encode())
        with open(file, "rb") as handle:
            digest.update(handle.read(SAMPLE_BYTES))
            if size > 2 * SAMPLE_BYTES:
                handle.seek(size - SAMPLE_BYTES)
                digest.update(handle.read())
    return digest.hexdigest()[:16]


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
