"""Full-size SD 1.5 / SDXL architectures from tunesmith's shipped configs, random weights, kohya LoRA round trip.

The kohya key scheme has to match real checkpoints, not only the tiny test pipelines, so this builds the real
UNet and text encoder(s) (random weights, no download; a small VAE with the real 8x downsampling stands in for
the real one, which plays no part in LoRA names), trains LoRA on the layers sd-scripts trains for two steps at
64 px, exports kohya and reloads it with diffusers' load_lora_weights, which must use every layer.
"""

from __future__ import annotations

import json
import time

import torch

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]  # sd-scripts: CLIPAttention and CLIPMLP


def build(family: str, shipped_vae: bool = False):
    """A pipeline with the real UNet and text encoder(s) of `family` ("sd1", "sd2" or "sdxl") and a small VAE, or
    with `shipped_vae` the real one (what a single-file checkpoint of the family holds)."""
    import diffusers
    import transformers
    from diffusers import AutoencoderKL

    from tunesmith.models.diffusion import FAMILIES, clip_tokenizer, shipped_config

    family_info = FAMILIES[family]
    folder = shipped_config(family_info)
    index = json.loads((folder / "model_index.json").read_text())
    torch.manual_seed(0)
    parts = {}
    for name in ("unet", "text_encoder", "text_encoder_2", *(("vae",) if shipped_vae else ())):
        if name not in index:
            continue
        library, class_name = index[name]
        cls = getattr(diffusers if library == "diffusers" else transformers, class_name)
        parts[name] = (cls.from_config(cls.load_config(folder / name)) if library == "diffusers"
                       else cls(cls.config_class.from_pretrained(folder / name)))
    scheduler_class = getattr(diffusers, index["scheduler"][1])
    parts["scheduler"] = scheduler_class.from_config(scheduler_class.load_config(folder / "scheduler"))
    parts["vae"] = parts.get("vae") or AutoencoderKL(block_out_channels=[32] * 4, down_block_types=["DownEncoderBlock2D"] * 4,
                                 up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=1, latent_channels=4)
    for name, pad in zip(("tokenizer", "tokenizer_2"), family_info.pad_tokens):
        parts[name] = clip_tokenizer(pad)
    extra = ({"add_watermarker": False} if family == "sdxl"
             else {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False})
    pipeline = getattr(diffusers, family_info.pipeline)(**parts, **extra)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(torch.float32)


def add_lora(pipeline, rank: int = 4) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    pipeline.unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=UNET_TARGETS))
    for name in ("text_encoder", "text_encoder_2"):
        if getattr(pipeline, name, None) is not None:  # transformers' add_adapter refuses PEFT < 0.22
            config = LoraConfig(r=rank, lora_alpha=rank, target_modules=TEXT_TARGETS)
            inject_adapter_in_model(config, getattr(pipeline, name), adapter_name="default")


def train_two_steps(pipeline, size: int = 64) -> list[float]:
    """Two AdamW steps of the epsilon loss on random latents at `size` px, training every LoRA parameter."""
    xl = hasattr(pipeline, "text_encoder_2")
    models = [pipeline.unet, pipeline.text_encoder] + ([pipeline.text_encoder_2] if xl else [])
    parameters = [p for model in models for n, p in model.named_parameters() if "lora_" in n]
    for p in parameters:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(parameters, lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    latent = size // pipeline.vae_scale_factor
    losses = []
    for _ in range(2):
        ids = pipeline.tokenizer(["a photo of sks dog"], padding="max_length", max_length=77,
                                 return_tensors="pt").input_ids
        hidden = pipeline.text_encoder(ids, output_hidden_states=True)
        kwargs = {}
        if xl:
            second = pipeline.text_encoder_2(ids, output_hidden_states=True)
            context = torch.cat([hidden.hidden_states[-2], second.hidden_states[-2]], dim=-1)
            time_ids = torch.tensor([[size, size, 0, 0, size, size]], dtype=torch.float32)
            kwargs["added_cond_kwargs"] = {"text_embeds": second.text_embeds, "time_ids": time_ids}
        else:
            context = hidden.last_hidden_state
        latents = torch.randn(1, 4, latent, latent, generator=generator)
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, 1000, (1,), generator=generator)
        noisy = pipeline.scheduler.add_noise(latents, noise, timesteps)
        prediction = pipeline.unet(noisy, timesteps, context, **kwargs).sample
        loss = torch.nn.functional.mse_loss(prediction, noise)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    return losses


def kohya_round_trip(family: str, out_path) -> dict:
    """Build, train two steps, export kohya (which verifies the reload); what was measured."""
    from safetensors.torch import load_file

    from tunesmith.export.diffusion_lora import pipeline_lora
    from tunesmith.export.kohya import export_kohya

    started = time.perf_counter()
    pipeline = build(family)
    add_lora(pipeline)
    built = time.perf_counter()
    losses = train_two_steps(pipeline)
    trained = time.perf_counter()
    export_kohya(pipeline, out_path, family, dtype=torch.float16)
    exported = time.perf_counter()
    keys = load_file(str(out_path))
    modules = sorted({k.split(".")[0] for k in keys})
    layers = pipeline_lora(pipeline)
    return {
        "family": family, "losses": losses,
        "kohya_modules": {prefix: sum(m.startswith(prefix) for m in modules)
                          for prefix in ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")},
        "trained_layers": {name: len(v) for name, v in layers.items()},
        "seconds": {"build": built - started, "train": trained - built, "export_and_verify": exported - trained},
    }
