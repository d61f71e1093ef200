"""A LoRA run as one original-layout checkpoint (A1111, ComfyUI, from_single_file), proven to load.

The run's LoRA is fused into the base UNet and text encoder(s) with diffusers' own fuse_lora, and the fused
pipeline is written by the writer full DreamBooth uses for its model.safetensors. Fusing is checked layer by layer
(the weight entry each LoRA changes most must hold base + delta afterwards: a layer diffusers skipped is caught
without comparing images, which guidance and few-step samplers amplify rounding in). The file is then read back
with diffusers' from_single_file through tunesmith's offline loader (the component configs come from the base's
diffusers folder, or for a single-file base from the configs tunesmith ships for its family, as when the run loaded
it) and must draw, at a fixed seed, what the fused pipeline drew in memory.
"""

from __future__ import annotations

import gc
from pathlib import Path

from tunesmith.errors import ModelError

RELOAD_TOLERANCE = 1e-4  # largest pixel difference (pixels in [0, 1]) between the fused pipeline and the file
ADAPTER = "default"


def export_fused_single_file(run_dir: Path, out: Path) -> Path:
    """Write `out`, the LoRA run `run_dir` fused into its base as one .safetensors checkpoint (fp32, as trained)."""
    from tunesmith.export.diffusion_lora import lora_components, sample_image
    from tunesmith.export.staged import EXPORT_ADVICE, pipeline_bytes, staged
    from tunesmith.library_logs import FP32_MODULES_CAST, dropping
    from tunesmith.models.diffusion import load_diffusion
    from tunesmith.models.diffusion_layout import save_single_file
    from tunesmith.tasks.diffusion.trained import load_trained

    model, _ = load_trained(run_dir)
    pipeline = model.pipeline
    expected = _largest_changes(pipeline, lora_components(pipeline))
    pipeline.fuse_lora(components=lora_components(pipeline), adapter_names=[ADAPTER])
    pipeline.unload_lora_weights()  # the PEFT layers go; their base layers keep the fused weights
    _check_fused(pipeline, expected, run_dir)
    fused = sample_image(pipeline)
    family, config = model.family.label, model.source if model.source.is_dir() else None
    # Written and read back under a staging name, renamed to `out` only once it loads (export/staged.py): a file that
    # does not load, or that a full disk cut short, is never left behind.
    with staged(out, pipeline_bytes(pipeline), "write", EXPORT_ADVICE) as tmp:
        save_single_file(pipeline, tmp, model.family.name)
        del model, pipeline  # one pipeline in memory at a time: SDXL in fp32 is ~14 GB
        gc.collect()
        try:
            with dropping(FP32_MODULES_CAST):
                reloaded = load_diffusion(tmp, config=config)
            difference = float(abs(sample_image(reloaded.pipeline) - fused).max())
        except ModelError as error:
            raise ModelError(f"{out}: written, but from_single_file cannot read it back as {family}: "
                             f"{error}") from None
        if difference > RELOAD_TOLERANCE:
            raise ModelError(f"{out}: read back with from_single_file, it draws a different image than the fused "
                             f"pipeline (largest pixel difference {difference:.4f}, tolerance {RELOAD_TOLERANCE:g}); "
                             "not kept")
    return out


def _largest_changes(pipeline, components: list[str]) -> dict[tuple[str, str], tuple[int, float]]:
    """(component, LoRA layer) -> (flat index of the weight entry its LoRA changes most, base + delta there)."""
    import torch
    from peft.tuners.lora import LoraLayer

    found = {}
    with torch.no_grad():
        for component in components:
            for name, module in getattr(pipeline, component).named_modules():
                if isinstance(module, LoraLayer) and ADAPTER in module.lora_A:
                    delta = module.get_delta_weight(ADAPTER).flatten()
                    index = int(delta.abs().argmax())
                    found[(component, name)] = (index, float(module.get_base_layer().weight.flatten()[index]
                                                             + delta[index]))
    return found


def _check_fused(pipeline, expected: dict, run_dir: Path) -> None:
    components = {component for component, _ in expected}
    modules = {component: dict(getattr(pipeline, component).named_modules()) for component in components}
    missed = [f"{component}.{name}" for (component, name), (index, value) in expected.items()
              if abs(float(modules[component][name].weight.flatten()[index]) - value) > 1e-6 * max(1.0, abs(value))]
    if missed:
        raise ModelError(f"{run_dir}: {len(missed)} of {len(expected)} LoRA layers were not fused into the base, "
                         f"e.g. {missed[0]}")
