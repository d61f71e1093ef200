"""The original Stable Diffusion key layout (CompVis LDM / Stability SGM), as A1111 and ComfyUI read it.

diffusers converts that layout into its own when loading a single file (loaders/single_file_utils.py); this is the
inverse, used to write single-file checkpoints and, for SDXL, the UNet names that kohya LoRA files use. The UNet
mapping works on module paths, so parameter keys and LoRA module names share one rule.
"""

from __future__ import annotations

import re

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIXES = {  # (family, text encoder) -> prefix in the original checkpoint
    ("sd1", "text_encoder"): "cond_stage_model.transformer.",
    ("sd2", "text_encoder"): "cond_stage_model.model.",
    ("sdxl", "text_encoder"): "conditioner.embedders.0.transformer.",
    ("sdxl", "text_encoder_2"): "conditioner.embedders.1.model.",
}
OPEN_CLIP = {("sd2", "text_encoder"), ("sdxl", "text_encoder_2")}  # OpenCLIP towers keep open_clip's own names

UNET_TOP_LEVEL = {
    "conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2", "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
RESNET_PARTS = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
VAE_RESNET_PARTS = {"conv_shortcut": "nin_shortcut"}
VAE_ATTENTION_PARTS = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
OPEN_CLIP_LAYER_PARTS = {"self_attn.out_proj": "attn.out_proj", "layer_norm1": "ln_1", "layer_norm2": "ln_2",
                         "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
OPEN_CLIP_TOP_LEVEL = {"embeddings.token_embedding.weight": "token_embedding.weight",
                       "embeddings.position_embedding.weight": "positional_embedding",
                       "final_layer_norm.weight": "ln_final.weight", "final_layer_norm.bias": "ln_final.bias"}


class UnetLayout:
    """Maps diffusers UNet module paths (down_blocks.1.attentions.0...) to original ones (input_blocks.4.1...)."""

    def __init__(self, config):
        if not isinstance(config.layers_per_block, int):
            raise ValueError("the original layout needs one layers_per_block for every block")
        self.per_block = config.layers_per_block
        self.up_has_attention = ["CrossAttn" in kind for kind in config.up_block_types]

    def name(self, path: str) -> str:
        for diffusers_name, original in UNET_TOP_LEVEL.items():
            if path == diffusers_name or path.startswith(diffusers_name + "."):
                return original + path[len(diffusers_name):]
        step = self.per_block + 1
        if m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)(.*)", path):
            return self._inner(f"input_blocks.{1 + int(m[1]) * step + int(m[3])}", m[2], m[4])
        if m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)(.*)", path):
            return self._inner(f"output_blocks.{int(m[1]) * step + int(m[3])}", m[2], m[4])
        if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv(.*)", path):
            return f"input_blocks.{(int(m[1]) + 1) * step}.0.op{m[2]}"
        if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv(.*)", path):
            block = int(m[1])
            position = 2 if self.up_has_attention[block] else 1  # after [resnet, attention] or [resnet]
            return f"output_blocks.{block * step + self.per_block}.{position}.conv{m[2]}"
        if m := re.fullmatch(r"mid_block\.resnets\.(\d+)(.*)", path):
            return f"middle_block.{2 * int(m[1])}{_rename_first(m[2], RESNET_PARTS)}"  # a flat [res, attn, res]
        if m := re.fullmatch(r"mid_block\.attentions\.0(.*)", path):
            return f"middle_block.1{m[1]}"
        raise KeyError(f"no original-layout name for UNet module '{path}'")

    @staticmethod
    def _inner(block: str, kind: str, rest: str) -> str:
        if kind == "attentions":
            return f"{block}.1{rest}"
        return f"{block}.0{_rename_first(rest, RESNET_PARTS)}"


def _rename_first(rest: str, parts: dict[str, str]) -> str:
    """Rename the leading module names of `rest` (".norm1.weight" -> ".in_layers.0.weight")."""
    for old, new in parts.items():
        if rest == f".{old}" or rest.startswith(f".{old}."):
            return f".{new}{rest[len(old) + 1:]}"
    return rest


def unet_to_original(state_dict: dict, config) -> dict:
    layout = UnetLayout(config)
    return {UNET_PREFIX + layout.name(key): value for key, value in state_dict.items()}


def vae_to_original(state_dict: dict, config) -> dict:
    blocks = len(config.up_block_types)
    out = {}
    for key, value in state_dict.items():
        name = key.replace("conv_norm_out", "norm_out")
        if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0(.*)", name):
            name = f"{m[1]}.mid.attn_1{_rename_first(m[2], VAE_ATTENTION_PARTS)}"
            if value.ndim == 2:  # the original attention uses 1x1 convolutions where diffusers has linear layers
                value = value[:, :, None, None]
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)(.*)", name):
            name = f"{m[1]}.mid.block_{int(m[2]) + 1}{_rename_first(m[3], VAE_RESNET_PARTS)}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)(.*)", name):
            name = f"encoder.down.{m[1]}.block.{m[2]}{_rename_first(m[3], VAE_RESNET_PARTS)}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv(.*)", name):
            name = f"encoder.down.{m[1]}.downsample.conv{m[2]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)(.*)", name):  # the decoder counts down
            name = f"decoder.up.{blocks - 1 - int(m[1])}.block.{m[2]}{_rename_first(m[3], VAE_RESNET_PARTS)}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv(.*)", name):
            name = f"decoder.up.{blocks - 1 - int(m[1])}.upsample.conv{m[2]}"
        out[VAE_PREFIX + name] = value
    return out


def clip_to_original(state_dict: dict, prefix: str) -> dict:
    # Newer transformers flatten CLIPTextModel (no text_model.); the original layout always has it.
    return {prefix + (key if key.startswith("text_model.") else "text_model." + key): value
            for key, value in state_dict.items() if not key.endswith("position_ids")}


def open_clip_to_original(state_dict: dict, prefix: str) -> dict:
    state = {key.removeprefix("text_model."): value for key, value in state_dict.items()}
    out = {}
    for key, value in state.items():
        if key in OPEN_CLIP_TOP_LEVEL:
            out[prefix + OPEN_CLIP_TOP_LEVEL[key]] = value
        elif key == "text_projection.weight":
            out[prefix + "text_projection"] = value.T.contiguous()  # open_clip multiplies x @ P, not P @ x
        elif m := re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", key):
            layer, rest = f"{prefix}transformer.resblocks.{m[1]}.", m[2]
            if q := re.fullmatch(r"self_attn\.q_proj\.(weight|bias)", rest):
                parts = [state[f"encoder.layers.{m[1]}.self_attn.{p}_proj.{q[1]}"] for p in "qkv"]
                out[f"{layer}attn.in_proj_{q[1]}"] = torch.cat(parts)  # open_clip fuses q, k, v in one projection
            elif not re.fullmatch(r"self_attn\.[kv]_proj\.(weight|bias)", rest):
                out[layer + _rename_first("." + rest, OPEN_CLIP_LAYER_PARTS)[1:]] = value
        elif not key.endswith("position_ids"):
            raise KeyError(f"no original-layout name for OpenCLIP text encoder key '{key}'")
    return out


def pipeline_to_original(pipeline, family: str) -> dict:
    """Every weight of an SD 1.x/2.x/SDXL pipeline under its original-layout key."""
    state = {**unet_to_original(pipeline.unet.state_dict(), pipeline.unet.config),
             **vae_to_original(pipeline.vae.state_dict(), pipeline.vae.config)}
    for name in ("text_encoder", "text_encoder_2"):
        encoder = getattr(pipeline, name, None)
        if encoder is None:
            continue
        convert = open_clip_to_original if (family, name) in OPEN_CLIP else clip_to_original
        state.update(convert(encoder.state_dict(), TEXT_PREFIXES[(family, name)]))
    return state


def save_single_file(pipeline, path, family: str, dtype=None) -> None:
    """Write the pipeline as one original-layout .safetensors file (what A1111, ComfyUI and from_single_file read)."""
    from safetensors.torch import save_file

    state = pipeline_to_original(pipeline, family)
    save_file({k: (v.to(dtype) if dtype else v).detach().contiguous() for k, v in state.items()}, str(path))
