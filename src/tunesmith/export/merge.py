"""Merge a PEFT adapter into its base model, and export a finished run (adapter folder, merged model, GGUF).

Merging always happens on an fp32 base: folding an adapter into quantised (bitsandbytes) weights would round
the update into 4/8-bit blocks and lose most of it. So a run is merged by reloading its base unquantised from
the run's config and loading the adapter onto that, which is also how a qlora run is exported.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

import torch

from tunesmith.errors import ModelError, TunesmithError
from tunesmith.export.gguf import GGUF_DTYPES, check_gguf_architecture, write_gguf

ExportFormat = Literal["safetensors", "gguf"]
# Merging reorders fp32 sums (W x + B(A x) becomes (W + BA) x), so logits move by rounding alone. On the 30-layer
# embedded model with large random LoRA, DoRA and IA3 adapters that stayed below 2e-5 of the largest logit;
# 1e-4 of it leaves headroom, while a real merge mistake (a module left out, a wrong scale) moves logits by the
# adapter's whole effect, orders of magnitude more.
MERGE_TOLERANCE = 1e-4
CHECK_SHAPE = (3, 8)  # a few short sequences, enough to exercise every merged weight


def merge_adapter(model):
    """Fold the PEFT adapter of `model` into its base weights; return the plain model, checked against base+adapter."""
    peft_config = model.peft_config[model.active_adapter]
    if peft_config.is_prompt_learning:
        kind = peft_config.peft_type.value.lower()
        raise ModelError(
            f"a {kind} adapter cannot be merged: it adds learned virtual tokens to every prompt instead of changing "
            "weights, so there is nothing to fold into the base model; export the adapter folder instead (tunesmith "
            "export RUN --out DIR, without --merge or --format gguf)"
        )
    if any(type(p).__module__.startswith("bitsandbytes") for p in model.parameters()):
        raise ModelError(
            "the base model's weights are quantised (bitsandbytes); merging into them would round the adapter away. "
            "Load the base in fp32 and the adapter onto it first (export_run does this for a run folder)"
        )
    model.eval()
    embeddings = model.get_base_model().get_input_embeddings()
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(embeddings.num_embeddings, CHECK_SHAPE, generator=generator)
    input_ids = input_ids.to(embeddings.weight.device)
    with torch.no_grad():
        expected = model(input_ids=input_ids).logits
        merged = model.merge_and_unload()
        actual = merged(input_ids=input_ids).logits
    difference = (actual - expected).abs().max().item()
    allowed = MERGE_TOLERANCE * max(expected.abs().max().item(), 1.0)
    if not difference <= allowed:  # written this way so a NaN difference fails too
        raise TunesmithError(
            f"merge check failed: the merged model's logits differ from base+adapter by up to {difference:.3g} "
            f"(allowed {allowed:.3g}); the merged weights do not reproduce the adapter"
        )
    return merged


def export_run(
    run_dir: Path, out_dir: Path, merge: bool = False, fmt: ExportFormat = "safetensors", gguf_dtype: str = "f16"
) -> list[Path]:
    """Export a finished run into `out_dir` (new or empty) and return the files written.

    safetensors: the adapter folder as trained, or with `merge` the merged model; a full/freeze run is already a
    complete model and is copied as is. gguf: one file holding the full model, so an adapter run is merged first.
    Files are written to a hidden sibling folder and renamed at the end: an interrupted export leaves no half result.
    """
    from tunesmith.config.load import load_config

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if fmt not in ("safetensors", "gguf"):
        raise ModelError(f"export format '{fmt}' is not supported; choose safetensors or gguf")
    if gguf_dtype not in GGUF_DTYPES:
        raise ModelError(f"GGUF dtype '{gguf_dtype}' is not supported; choose one of {', '.join(GGUF_DTYPES)}")
    if not (run_dir / "config.yaml").is_file():
        raise ModelError(f"{run_dir}: not a run folder (no config.yaml); pass the output_dir of a training run")
    trained = next((run_dir / name for name in ("adapter", "model") if (run_dir / name).is_dir()), None)
    if trained is None:
        raise ModelError(f"{run_dir}: training has not finished (no adapter/ or model/ folder); resume it first")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ModelError(f"{out_dir} already exists and is not an empty folder; choose a new folder or remove it")
    # Copying needs neither the config nor the base model, so it works even where the base is not available.
    copy = fmt == "safetensors" and not (merge and trained.name == "adapter")
    if not copy:
        config = load_config(run_dir / "config.yaml")
        source = _model_source(trained, config)
        if fmt == "gguf":
            from transformers import AutoConfig

            base_config = AutoConfig.from_pretrained(source.folder, trust_remote_code=config.trust_remote_code)
            check_gguf_architecture(base_config)

    staging = out_dir.parent / f".{out_dir.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if copy:
            shutil.copytree(trained, staging, dirs_exist_ok=True)
        else:
            model, tokenizer = _full_model(trained, source, config)
            if fmt == "gguf":
                write_gguf(model, tokenizer, staging / f"model-{gguf_dtype}.gguf", gguf_dtype)
            else:
                model.save_pretrained(staging, safe_serialization=True)
                tokenizer.save_pretrained(staging)
        # Provenance: the run's resolved config (headed by the tunesmith version that trained it) travels along.
        shutil.copyfile(run_dir / "config.yaml", staging / "config.yaml")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out_dir.exists():
        out_dir.rmdir()
    staging.rename(out_dir)
    return sorted(path for path in out_dir.rglob("*") if path.is_file())


def _model_source(trained: Path, config):
    """Where the full weights come from: the run's model folder, or for an adapter the base named in the config."""
    from tunesmith.models.load import ModelSource, resolve_model

    if trained.name == "model":
        return ModelSource(str(trained), trained)
    return resolve_model(config.model, config.allow_pickle)


def _full_model(trained: Path, source, config):
    """(fp32 model, tokenizer) of a run's result, with an adapter merged into a freshly loaded fp32 base."""
    from tunesmith.models.load import ModelSource, load_adapter, load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(ModelSource(str(trained), trained))
    # Loaded without the run's quantisation on purpose: see the module docstring.
    model = load_causal_lm(source, config.trust_remote_code).eval()
    if trained.name == "model":
        return model, tokenizer
    return merge_adapter(load_adapter(model, trained, config.allow_pickle)), tokenizer
