"""Stable Diffusion LoRA files that are proven to load: diffusers/PEFT format, and the check both formats share.

A LoRA file "loads" in diffusers even when half its keys are silently dropped (the classic "lora key not loaded").
So every export is read back with the pipeline's own `load_lora_weights` as a second adapter, and the export fails
unless every LoRA layer of the trained adapter came back with the same weights and scale, nothing else came back,
no library warned about unexpected or missing keys, and a few denoising steps at a fixed seed give the same image.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tunesmith.errors import ModelError

CHECK_ADAPTER = "tunesmith_export_check"
LIBRARY_LOGGERS = ("diffusers", "transformers", "peft")
KEY_WORDS = ("unexpected", "missing", "not used", "not correctly renamed")
DIFFUSERS_WEIGHT_NAME = "pytorch_lora_weights.safetensors"


@dataclass(frozen=True)
class LoraWeights:
    down: object  # lora_A weight (r x in, or r x in x k x k for convolutions)
    up: object  # lora_B weight
    scale: float  # what the layer multiplies up @ down by (alpha / r, or alpha / sqrt(r) for rsLoRA)


def lora_components(pipeline) -> list[str]:
    """The pipeline parts LoRA can train: unet, text_encoder and (SDXL) text_encoder_2."""
    return [name for name in pipeline._lora_loadable_modules if getattr(pipeline, name, None) is not None]


def lora_layers(model, adapter: str) -> dict[str, LoraWeights]:
    """The adapter's LoRA layers in `model`, by module name."""
    from peft.tuners.lora import LoraLayer

    layers = {}
    for name, module in model.named_modules():
        if not isinstance(module, LoraLayer) or adapter not in module.lora_A:
            continue
        if module.use_dora.get(adapter) or module.lora_bias.get(adapter):
            raise ModelError(f"LoRA layer {name} uses DoRA or a LoRA bias, which kohya and diffusers LoRA files "
                             "cannot hold; export it merged (a full model) instead")
        layers[name] = LoraWeights(module.lora_A[adapter].weight.detach(), module.lora_B[adapter].weight.detach(),
                                   float(module.scaling[adapter]))
    return layers


def pipeline_lora(pipeline, adapter: str = "default") -> dict[str, dict[str, LoraWeights]]:
    found = {name: lora_layers(getattr(pipeline, name), adapter) for name in lora_components(pipeline)}
    found = {name: layers for name, layers in found.items() if layers}
    if not found:
        raise ModelError(f"the pipeline has no LoRA adapter '{adapter}' to export")
    return found


def lora_bytes(pipeline, adapter: str = "default") -> int:
    """About what a LoRA file of `adapter` takes: its down and up weights."""
    from tunesmith.export.staged import tensor_bytes

    layers = [layer for found in pipeline_lora(pipeline, adapter).values() for layer in found.values()]
    return tensor_bytes(w for layer in layers for w in (layer.down, layer.up))


def export_diffusers_lora(pipeline, folder: str | Path, adapter: str = "default", verify: bool = True) -> Path:
    """Write `folder`/pytorch_lora_weights.safetensors (diffusers format, with PEFT metadata), then verify it."""
    from peft.utils import get_peft_model_state_dict

    folder = Path(folder)
    expected = pipeline_lora(pipeline, adapter)
    layers, metadata = {}, {}
    for name in expected:
        model = getattr(pipeline, name)
        layers[f"{name}_lora_layers"] = get_peft_model_state_dict(model, adapter_name=adapter)
        metadata[f"{name}_lora_adapter_metadata"] = model.peft_config[adapter].to_dict()
    type(pipeline).save_lora_weights(folder, weight_name=DIFFUSERS_WEIGHT_NAME, **layers, **metadata)
    path = folder / DIFFUSERS_WEIGHT_NAME
    if verify:
        verify_lora_file(pipeline, path, expected, adapter)
    return path


def verify_lora_file(pipeline, path: Path, expected: dict[str, dict[str, LoraWeights]], adapter: str = "default",
                     image_tolerance: float = 1e-4, describe=lambda component, module: f"{component}.{module}") -> None:
    """Load `path` into `pipeline` beside `adapter` and raise ModelError unless it reproduces `adapter`.

    `expected` holds the weights as the file stores them (cast to its dtype): they must come back exactly, and the
    reloaded file must draw what the trained adapter draws with those weights (pixels in [0, 1] within
    `image_tolerance`). `describe(component, module)` names a layer as the file does (kohya keys).
    """
    import numpy as np

    with _adapter_holding(pipeline, expected, adapter):
        reference = sample_image(pipeline)
    try:
        with _library_warnings() as messages:
            try:
                pipeline.load_lora_weights(str(path), adapter_name=CHECK_ADAPTER)
            except (ValueError, KeyError, RuntimeError) as error:
                raise ModelError(f"{path}: diffusers could not load the exported LoRA: {error}") from None
        problems = [f"{path}: a library warned while loading it: {m}" for m in messages if _about_check(m)]
        problems += _compare_layers(pipeline, expected, path, describe)
        if not problems:
            pipeline.set_adapters(CHECK_ADAPTER)
            difference = float(np.abs(sample_image(pipeline) - reference).max())
            if difference > image_tolerance:
                problems.append(f"{path}: reloaded, it draws a different image than the trained adapter "
                                f"(largest pixel difference {difference:.4f})")
    finally:  # the pipeline leaves as it came: the trained adapter active, no trace of the check
        pipeline.set_adapters(adapter)
        if any(CHECK_ADAPTER in names for names in pipeline.get_list_adapters().values()):
            pipeline.delete_adapters(CHECK_ADAPTER)
    if problems:
        raise ModelError(problems[0] + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""))


def _compare_layers(pipeline, expected, path, describe) -> list[str]:
    import torch

    problems = []
    for component in lora_components(pipeline):
        want = expected.get(component, {})
        got = lora_layers(getattr(pipeline, component), CHECK_ADAPTER)
        ignored = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        if ignored:
            problems.append(f"{path}: {len(ignored)} of {len(want)} {component} LoRA layers were ignored when "
                            f"diffusers loaded it, e.g. {describe(component, ignored[0])}")
        if extra:
            problems.append(f"{path}: diffusers loaded {len(extra)} {component} LoRA layers the trained adapter does "
                            f"not have, e.g. {extra[0]}")
        for name in sorted(set(want) & set(got)):
            a, b = want[name], got[name]
            same = (torch.equal(a.down.to(b.down.dtype), b.down) and torch.equal(a.up.to(b.up.dtype), b.up)
                    and abs(a.scale - b.scale) <= 1e-6 * max(1.0, abs(a.scale)))
            if not same:
                problems.append(f"{path}: {describe(component, name)} came back with different weights or scale "
                                f"(scale {a.scale:g} -> {b.scale:g})")
    return problems


@contextmanager
def _adapter_holding(pipeline, weights: dict[str, dict[str, LoraWeights]], adapter: str):
    """The trained adapter with `weights` (e.g. rounded to the file's dtype) for a while, then as it was."""
    import torch

    saved = []
    with torch.no_grad():
        for component, layers in weights.items():
            modules = dict(getattr(pipeline, component).named_modules())
            for name, layer in layers.items():
                module = modules[name]
                down, up = module.lora_A[adapter].weight, module.lora_B[adapter].weight
                saved.append((module, down.clone(), up.clone(), module.scaling[adapter]))
                down.copy_(layer.down)
                up.copy_(layer.up)
                module.scaling[adapter] = layer.scale
    try:
        yield
    finally:
        with torch.no_grad():
            for module, down, up, scale in saved:
                module.lora_A[adapter].weight.copy_(down)
                module.lora_B[adapter].weight.copy_(up)
                module.scaling[adapter] = scale


def sample_image(pipeline, steps: int = 2, seed: int = 0):
    """A few denoising steps at the smallest size the UNet accepts (at least 32 px), as a float array."""
    import torch

    down = len(pipeline.unet.config.block_out_channels) - 1
    size = max(32, pipeline.vae_scale_factor * 2**down)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return pipeline("a photo of sks dog", num_inference_steps=steps, height=size, width=size,
                        generator=generator, output_type="np").images


def _about_check(message: str) -> bool:
    """Whether a load warning is about the file being checked.

    Loading a second adapter makes transformers report the trained adapter's tensors as "missing" from the file
    (they never were in it); those rows name that adapter, so only warnings naming the check adapter, or warning
    about keys without naming any adapter's LoRA tensors, count.
    """
    if CHECK_ADAPTER in message:
        return True
    if message.startswith("No LoRA keys associated"):  # a part the file has no layers for; the comparison judges it
        return False
    return any(word in message.lower() for word in KEY_WORDS) and "lora_" not in message


@contextmanager
def _library_warnings():
    """Collect, instead of printing, what diffusers/transformers log and PEFT warns while a file loads."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    collect = Collect(logging.WARNING)
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    saved = [(log.handlers, log.propagate) for log in loggers]
    for log in loggers:
        log.handlers, log.propagate = [collect], False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield messages
        messages.extend(str(w.message) for w in caught)
    finally:
        for log, (handlers, propagate) in zip(loggers, saved):
            log.handlers, log.propagate = handlers, propagate
