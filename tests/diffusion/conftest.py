"""Tiny Stable Diffusion pipelines built from configs (random weights, no download), saved as diffusers folders.

Three shapes mirror the real families: SD 1.x (CLIP-L-like text encoder, epsilon), SD 2.x (OpenCLIP-like text
encoder, linear projections, v-prediction, "!" padding) and SDXL (two text encoders of different widths, pooled
text embeddings and size/crop conditioning through add_time_ids). The tokenizer is the real CLIP BPE vocabulary
tunesmith ships, so prompts tokenize exactly as with the real models.
"""

from __future__ import annotations

import pytest
import torch

TINY_VAE = dict(
    block_out_channels=[32, 64], down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
    latent_channels=4, layers_per_block=1, norm_num_groups=32, sample_size=32,
)
SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                 num_train_timesteps=1000)


def _text_config(hidden: int, act: str = "quick_gelu", projection_dim: int | None = None):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=49408, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, hidden_act=act, projection_dim=projection_dim or hidden,
        bos_token_id=0, eos_token_id=2, pad_token_id=1,
    )


def build_tiny_pipeline(family: str, seed: int = 0):
    """A random pipeline of `family` ("sd1", "sd2", "sdxl") at 32-64 px, fp32, in eval mode."""
    from diffusers import (AutoencoderKL, DDIMScheduler, EulerDiscreteScheduler, PNDMScheduler,
                           StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel)
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from tunesmith.models.diffusion import clip_tokenizer

    torch.manual_seed(seed)
    vae = AutoencoderKL(**TINY_VAE)
    if family == "sdxl":
        text_encoder = CLIPTextModel(_text_config(32))
        text_encoder_2 = CLIPTextModelWithProjection(_text_config(64, act="gelu", projection_dim=32))
        unet = UNet2DConditionModel(
            block_out_channels=(32, 32, 64), layers_per_block=2, sample_size=16,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 1, 2), attention_head_dim=(2, 4, 8), cross_attention_dim=32 + 64,
            use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + 32, norm_num_groups=32,
        )
        scheduler = EulerDiscreteScheduler(**SCHEDULER, interpolation_type="linear", timestep_spacing="leading")
        return StableDiffusionXLPipeline(
            vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=clip_tokenizer(),
            tokenizer_2=clip_tokenizer(pad_token="!"), unet=unet, scheduler=scheduler, add_watermarker=False,
        ).to(torch.float32)
    sd2 = family == "sd2"
    text_encoder = CLIPTextModel(_text_config(32, act="gelu" if sd2 else "quick_gelu"))
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=16,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=(2, 4) if sd2 else 4, cross_attention_dim=32, use_linear_projection=sd2,
        norm_num_groups=32,
    )
    scheduler = (DDIMScheduler(**SCHEDULER, clip_sample=False, set_alpha_to_one=False, prediction_type="v_prediction")
                 if sd2 else PNDMScheduler(**SCHEDULER, set_alpha_to_one=False, skip_prk_steps=True))
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(pad_token="!" if sd2 else "<|endoftext|>"),
        unet=unet, scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    ).to(torch.float32)


class TinyDirs:
    """family -> the tiny pipeline saved as a diffusers folder, built the first time a test asks for it."""

    def __init__(self, tmp_path_factory):
        self.factory, self.folders = tmp_path_factory, {}

    def __getitem__(self, family):
        if family not in self.folders:
            folder = self.factory.mktemp(f"tiny-{family}")
            build_tiny_pipeline(family).save_pretrained(folder, safe_serialization=True)
            self.folders[family] = folder
        return self.folders[family]


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """tiny_dirs["sd1" | "sd2" | "sdxl"]: SD 1.x-like, SD 2.x-like (v-prediction) and SDXL-like diffusers folders."""
    return TinyDirs(tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_sd_dir(tiny_dirs):
    return tiny_dirs["sd1"]


@pytest.fixture(scope="session")
def tiny_sd2_dir(tiny_dirs):
    return tiny_dirs["sd2"]


@pytest.fixture(scope="session")
def tiny_sdxl_dir(tiny_dirs):
    return tiny_dirs["sdxl"]


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """tunesmith's cache in a fresh folder, so cached latents and class images start empty."""
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def generate(pipe, prompt: str = "a photo of sks dog", seed: int = 0, steps: int = 2, size: int = 32):
    """A few denoising steps at a fixed seed, as a float array (what exports and round trips compare)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return pipe(prompt, num_inference_steps=steps, height=size, width=size, generator=generator,
                    output_type="np").images


@pytest.fixture(scope="session")
def sample():
    """generate(pipe, prompt=..., seed=..., steps=..., size=...) -> images as a float array."""
    return generate


UNET_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
                     "time_emb_proj", "conv1", "conv2", "conv_shortcut"]
TEXT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def add_lora(pipe, text_encoders: bool = True, seed: int = 1, unet_targets=None, rslora_text: bool = True):
    """LoRA adapter "default" on the UNet (and text encoders), with random non-zero up weights, so it changes images.

    Text encoders get the adapter through PEFT directly: transformers' own add_adapter refuses PEFT < 0.22.
    """
    from peft import LoraConfig, inject_adapter_in_model

    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=8, target_modules=unet_targets or UNET_LORA_TARGETS,
                                     init_lora_weights="gaussian"))
    names = [n for n in ("text_encoder", "text_encoder_2") if text_encoders and getattr(pipe, n, None) is not None]
    for name in names:
        config = LoraConfig(r=2, lora_alpha=4, target_modules=TEXT_LORA_TARGETS, use_rslora=rslora_text,
                            init_lora_weights="gaussian")
        inject_adapter_in_model(config, getattr(pipe, name), adapter_name="default")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for model in [pipe.unet] + [getattr(pipe, n) for n in names]:
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def lora():
    """add_lora(pipe, text_encoders=True, ...) -> the pipe with a random LoRA adapter "default"."""
    return add_lora


@pytest.fixture(scope="session")
def _loaded(tiny_dirs):
    from tunesmith.models.diffusion import load_diffusion

    cache = {}

    def load(family):
        if family not in cache:
            cache[family] = load_diffusion(tiny_dirs[family])
        return cache[family]

    return load


@pytest.fixture
def tiny_model(_loaded):
    """tiny_model(family) -> a DiffusionModel of the saved tiny pipeline with private copies of its networks
    (loading is done once a session; tokenizers and scheduler, which tests do not change, are shared)."""
    import copy
    import dataclasses

    def fresh(family):
        model = _loaded(family)
        parts = {name: copy.deepcopy(part) if isinstance(part, torch.nn.Module) else part
                 for name, part in model.pipeline.components.items()}
        pipeline = type(model.pipeline)(**parts)
        pipeline.set_progress_bar_config(disable=True)
        return dataclasses.replace(model, pipeline=pipeline)

    return fresh


@pytest.fixture(scope="session")
def encoder_dirs(tmp_path_factory):
    """(CLIP folder, DINO folder): tiny random local encoders at 32 px, saved as transformers folders."""
    from transformers import (CLIPConfig, CLIPImageProcessorPil, CLIPModel, ViTConfig, ViTImageProcessorPil,
                              ViTModel)

    from tunesmith.models.diffusion import clip_tokenizer

    torch.manual_seed(0)
    clip_dir, dino_dir = tmp_path_factory.mktemp("clip"), tmp_path_factory.mktemp("dino")
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    config = CLIPConfig(text_config={**small, "vocab_size": 49408, "max_position_embeddings": 77},
                        vision_config={**small, "image_size": 32, "patch_size": 8}, projection_dim=16)
    CLIPModel(config).save_pretrained(clip_dir)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(clip_dir)
    clip_tokenizer().save_pretrained(clip_dir)
    ViTModel(ViTConfig(image_size=32, patch_size=8, **small)).save_pretrained(dino_dir)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(dino_dir)
    return clip_dir, dino_dir
