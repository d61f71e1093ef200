"""SD 1.5's architecture at reduced width: the shipped SD 1.5 configs with narrower blocks, random weights.

Everything but the widths stays SD 1.5's (tunesmith's diffusion_configs/sd15): the UNet's four levels
(CrossAttnDown x3 + Down, two layers per block, one transformer per attention block, SiLU, GroupNorm 32), the VAE's
four levels with two layers each (8x downsampling, scaling factor 0.18215), the CLIP text encoder's 12 layers with
quick_gelu over the real CLIP tokenizer, and the scaled-linear PNDM schedule. Only widths are cut: UNet and VAE
blocks, the text encoder's hidden, MLP and projection widths (the UNet's cross-attention width follows), and the
number of attention heads with them, so that each head stays about as wide as on SD 1.5. A training step then does
the same kinds of work in about the same proportions as on SD 1.5 (flop_shares measures them), on a CPU in seconds
instead of minutes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

GROUPS = 32  # GroupNorm groups in SD 1.5's UNet and VAE: every width must be a multiple


@dataclass(frozen=True)
class Widths:
    unet: tuple[int, ...] = (64, 128, 256, 256)  # SD 1.5: 320, 640, 1280, 1280 (one fifth)
    # Heads are cut with the width, so a head stays about as wide as SD 1.5's (32/64/128/128 against 40/80/160/160):
    # eight 8-wide heads would make the same attention FLOPs ~3x slower on a CPU (more softmax per product).
    unet_heads: int = 2  # SD 1.5: 8
    # SD 1.5: 128, 256, 512, 512. A quarter of the first two; the last two narrower than a quarter, so the VAE's
    # share of a step's FLOPs (42% at 256 px) stays near SD 1.5's at 512 px (39%) instead of 47% (see flop_shares).
    vae: tuple[int, ...] = (32, 64, 96, 96)
    text: int = 192  # SD 1.5: 768 (one quarter); MLP 4x
    text_heads: int = 3  # SD 1.5: 12; 64 wide either way

    def describe(self) -> str:
        head_widths = [w // self.unet_heads for w in self.unet]
        return (f"UNet blocks {list(self.unet)} with {self.unet_heads} heads of {head_widths} (SD 1.5: [320, 640, "
                f"1280, 1280], 8 heads of [40, 80, 160, 160]), VAE blocks {list(self.vae)} (SD 1.5: [128, 256, 512, "
                f"512]), text encoder width {self.text} / MLP {4 * self.text} / {self.text_heads} heads (SD 1.5: 768 / "
                f"3072 / 12); every layer count and the schedule as SD 1.5")


def sd15_configs() -> dict[str, dict]:
    """SD 1.5's component configs as tunesmith ships them (name -> config dict)."""
    from tunesmith.models.diffusion import FAMILIES, shipped_config

    folder = shipped_config(FAMILIES["sd1"])
    files = {"unet": "unet/config.json", "vae": "vae/config.json", "text_encoder": "text_encoder/config.json",
             "scheduler": "scheduler/scheduler_config.json"}
    return {name: json.loads((folder / path).read_text()) for name, path in files.items()}


def reduced_configs(widths: Widths = Widths()) -> dict[str, dict]:
    """SD 1.5's configs with `widths` put in; refuses widths the architecture cannot take."""
    configs = sd15_configs()
    unet, vae, text = configs["unet"], configs["vae"], configs["text_encoder"]
    for name, new, old in (("unet", widths.unet, unet["block_out_channels"]),
                           ("vae", widths.vae, vae["block_out_channels"])):
        if len(new) != len(old) or any(w % GROUPS for w in new):
            raise ValueError(f"{name} widths {list(new)}: need {len(old)} multiples of {GROUPS}")
    if widths.text % widths.text_heads:
        raise ValueError(f"text width {widths.text}: must be a multiple of the {widths.text_heads} heads")
    if any(w % widths.unet_heads for w in widths.unet):
        raise ValueError(f"unet widths {list(widths.unet)}: must split into {widths.unet_heads} heads")
    # diffusers' SD 1.5 config names the number of heads attention_head_dim (a historical misnomer).
    unet.update(block_out_channels=list(widths.unet), cross_attention_dim=widths.text,
                attention_head_dim=widths.unet_heads)
    vae.update(block_out_channels=list(widths.vae))
    text.update(hidden_size=widths.text, intermediate_size=4 * widths.text, projection_dim=widths.text,
                num_attention_heads=widths.text_heads)
    return configs


def build_pipeline(widths: Widths = Widths(), seed: int = 0, resolution: int = 512):
    """The reduced pipeline with random weights drawn from `seed` (the same on every machine)."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from tunesmith.models.diffusion import clip_tokenizer

    configs = reduced_configs(widths)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config({**configs["unet"], "sample_size": resolution // 8})
    vae = AutoencoderKL.from_config({**configs["vae"], "sample_size": resolution})
    text_config = {k: v for k, v in configs["text_encoder"].items() if k != "architectures"}
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_config))
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(), unet=unet,
        scheduler=PNDMScheduler.from_config(configs["scheduler"]), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    ).to(torch.float32)


def parameter_counts(pipeline) -> dict[str, int]:
    return {name: sum(p.numel() for p in getattr(pipeline, name).parameters())
            for name in ("unet", "vae", "text_encoder")}


def save_pipeline(folder: Path, widths: Widths = Widths(), seed: int = 0, resolution: int = 512) -> dict:
    """Build and save the pipeline as a diffusers folder (what both tools load); its sizes, for the results."""
    from tunesmith.models.diffusion import quiet_progress

    pipeline = build_pipeline(widths, seed, resolution)
    with quiet_progress():
        pipeline.save_pretrained(folder, safe_serialization=True)
    return {"widths": asdict(widths), "description": widths.describe(), "seed": seed,
            "parameters": parameter_counts(pipeline)}


def flop_shares(configs: dict[str, dict], resolution: int, rank: int = 4) -> dict[str, dict]:
    """FLOPs per training image of each part of a LoRA step, counted by torch's FlopCounterMode: the VAE encoding
    the image, the text encoder encoding its 77-token caption, and the UNet's forward and backward with LoRA on
    its attention projections. What caching latents and text embeddings saves is the first two parts.

    Counted on the meta device: nothing is allocated, so SD 1.5 itself is counted (in seconds), and attention
    goes through products the counter sees (on a CPU, SDPA's fused kernel has no FLOP formula and counts 0)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from peft import LoraConfig
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(configs["unet"])
        vae = AutoencoderKL.from_config(configs["vae"])
        text = {k: v for k, v in configs["text_encoder"].items() if k != "architectures"}
        text_encoder = CLIPTextModel(CLIPTextConfig(**text))
    for part in (unet, vae, text_encoder):
        part.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    unet.to("meta")  # the adapter's new weights
    counted = {}

    def count(name, work):
        with FlopCounterMode(display=False) as counter:
            result = work()
        counted[name] = counter.get_total_flops()
        return result

    on = {"device": "meta"}
    count("vae_encode", lambda: vae.encode(torch.empty(1, 3, resolution, resolution, **on)))
    embeddings = count("text_encode", lambda: text_encoder(torch.zeros(1, 77, dtype=torch.long, **on))[0])
    latents = torch.empty(1, configs["unet"]["in_channels"], resolution // 8, resolution // 8, **on)
    count("unet_forward_backward",
          lambda: unet(latents, torch.tensor([500], **on), embeddings).sample.sum().backward())
    total = sum(counted.values())
    return {name: {"gflops": round(flops / 1e9, 3), "share": round(flops / total, 4)}
            for name, flops in counted.items()}
