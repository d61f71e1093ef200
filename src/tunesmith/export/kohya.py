"""LoRA in kohya format, the one A1111, ComfyUI, Forge and kohya sd-scripts read, verified by loading it back.

Key scheme (as sd-scripts writes it, which is what those tools expect):
- UNet: `lora_unet_<module>` with dots as underscores. SD 1.x/2.x use diffusers module names
  (down_blocks_1_attentions_0_...), because sd-scripts trains those on the diffusers UNet; SDXL uses the
  original SGM names (input_blocks_4_1_...), because sd-scripts trains SDXL on its own original UNet.
- Text encoders: `lora_te_` (SD 1.x/2.x) or `lora_te1_`/`lora_te2_` (SDXL) + the transformers CLIP module name
  (text_model_encoder_layers_0_self_attn_q_proj).
- Per layer: `.lora_down.weight` (PEFT's lora_A), `.lora_up.weight` (lora_B), `.alpha` (a scalar with
  alpha / rank = the layer's scale, so rsLoRA's alpha / sqrt(rank) is kept by writing alpha * sqrt(rank)).
"""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith.errors import ModelError
from tunesmith.export.diffusion_lora import LoraWeights, pipeline_lora, verify_lora_file

TEXT_PREFIXES = {
    ("sd1", "text_encoder"): "lora_te_", ("sd2", "text_encoder"): "lora_te_",
    ("sdxl", "text_encoder"): "lora_te1_", ("sdxl", "text_encoder_2"): "lora_te2_",
}
BASE_MODEL_VERSION = {"sd1": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0"}


class KohyaNames:
    """Kohya layer names for the modules of one pipeline."""

    def __init__(self, pipeline, family: str):
        from tunesmith.models.diffusion_layout import UnetLayout

        self.family = family
        self.unet_layout = UnetLayout(pipeline.unet.config) if family == "sdxl" else None

    def __call__(self, component: str, module: str) -> str:
        if component == "unet":
            name = self.unet_layout.name(module) if self.unet_layout else module
            return "lora_unet_" + name.replace(".", "_")
        # transformers' flattened CLIPTextModel drops the text_model. level that every kohya file has
        name = module if module.startswith(("text_model.", "text_projection")) else "text_model." + module
        return TEXT_PREFIXES[(self.family, component)] + name.replace(".", "_")


def to_kohya(pipeline, family: str, adapter: str = "default", dtype=None) -> tuple[dict, dict]:
    """(kohya state dict, the adapter's layers as the file stores them) for the pipeline's LoRA `adapter`."""
    import torch

    names = KohyaNames(pipeline, family)
    state, stored = {}, {}
    for component, layers in pipeline_lora(pipeline, adapter).items():
        stored[component] = {}
        for module, layer in layers.items():
            key = names(component, module)
            if key + ".lora_down.weight" in state:
                raise ModelError(f"two {component} layers map to the kohya name {key}; the file would lose one")
            down, up = (w.to(dtype or w.dtype).contiguous() for w in (layer.down, layer.up))
            rank = down.shape[0]
            state[key + ".lora_down.weight"], state[key + ".lora_up.weight"] = down, up
            state[key + ".alpha"] = torch.tensor(layer.scale * rank, dtype=down.dtype)
            # what a reader computes back: alpha / rank, with alpha rounded to the file's dtype
            stored[component][module] = LoraWeights(down, up, float(state[key + ".alpha"]) / rank)
    return state, stored


def export_kohya(pipeline, path: str | Path, family: str, adapter: str = "default", dtype=None,
                 verify: bool = True) -> Path:
    """Write the pipeline's LoRA `adapter` as one kohya .safetensors file; with `verify`, prove it loads back.

    `family` is "sd1", "sd2" or "sdxl" (tunesmith.models.diffusion.Family.name). `dtype` (e.g. torch.float16,
    what most shared LoRA files use) rounds the weights; the check compares with the trained adapter rounded alike.
    The file is written and checked under a staging name and only then renamed to `path` (export/staged.py): a full
    disk is one TunesmithError naming `path` and the space, and never leaves part of a file there.
    """
    from safetensors.torch import save_file

    from tunesmith.export.staged import EXPORT_ADVICE, staged, tensor_bytes

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ModelError(f"--out {path}: a kohya LoRA is one .safetensors file; name it *.safetensors")
    state, stored = to_kohya(pipeline, family, adapter, dtype)
    with staged(path, tensor_bytes(state.values()), "write", EXPORT_ADVICE) as tmp:
        save_file(state, str(tmp), metadata=_metadata(state, family))
        if verify:
            verify_lora_file(pipeline, tmp, stored, adapter, describe=KohyaNames(pipeline, family))
    return path


def _metadata(state: dict, family: str) -> dict[str, str]:
    # The sd-scripts training metadata the UIs show (network kind, rank, alpha, base model); values are strings.
    ranks = sorted({int(v.shape[0]) for k, v in state.items() if k.endswith(".lora_down.weight")})
    alphas = sorted({round(float(v), 4) for k, v in state.items() if k.endswith(".alpha")})
    return {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(ranks[-1]) if len(ranks) == 1 else "Dynamic",
        "ss_network_alpha": str(alphas[-1]) if len(alphas) == 1 else "Dynamic",
        "ss_v2": str(family == "sd2"),
        "ss_base_model_version": BASE_MODEL_VERSION[family],
        "ss_training_comment": json.dumps({"trained_with": "tunesmith"}),
    }
