"""`model: tunesmith-tiny-sd`: a tiny SD 1.x-shaped pipeline with random weights, built from configs on first use.

It exists so a diffusion config runs anywhere in minutes with nothing downloaded (the example, smoke tests): the
real CLIP tokenizer tunesmith ships, a 2-layer CLIP-like text encoder, a 32/64-channel UNet and VAE (64 px images
make 16 x 16 latents). It learns denoising like any pipeline but draws noise-like images: point `model:` at a real
SD 1.5 / SDXL file for pictures. Built with a fixed seed, so every machine gets the same weights.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tunesmith.cache import cache_root

TINY_ALIAS = "tunesmith-tiny-sd"
SEED = 0
SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                 num_train_timesteps=1000, set_alpha_to_one=False, skip_prk_steps=True)


def tiny_pipeline_dir() -> Path:
    """The cached diffusers folder of the tiny pipeline, built the first time."""
    target = cache_root() / "models" / TINY_ALIAS
    if not (target / "model_index.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        # Built beside the target and renamed, so an interrupted build never leaves half a pipeline.
        tmp = Path(tempfile.mkdtemp(prefix=f".{TINY_ALIAS}-", dir=target.parent))
        from tunesmith.models.diffusion import quiet_progress

        with quiet_progress():
            build_tiny_pipeline().save_pretrained(tmp, safe_serialization=True)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return target


def build_tiny_pipeline():
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from tunesmith.models.diffusion import clip_tokenizer

    torch.manual_seed(SEED)
    # Three VAE blocks: latents are a quarter of the image side (64 px images, 16 x 16 latents).
    vae = AutoencoderKL(block_out_channels=[32, 32, 64], down_block_types=["DownEncoderBlock2D"] * 3,
                        up_block_types=["UpDecoderBlock2D"] * 3, latent_channels=4, layers_per_block=1,
                        norm_num_groups=32, sample_size=64)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=32, bos_token_id=0, eos_token_id=2,
        pad_token_id=1,
    ))
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=16, cross_attention_dim=32,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=4, norm_num_groups=32,
    )
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(), unet=unet,
        scheduler=PNDMScheduler(**SCHEDULER), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
