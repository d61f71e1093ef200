"""The Stable Diffusion task: image batches, the noise-prediction loss with prior preservation, per-part rates.

The loss of a batch is  sum_i w_i * t_i * ||unet(x_t, t, c) - target||^2 / normaliser,  where the instance images
have w = 1, the paired class images w = prior_loss_weight, t_i is the min-SNR weight (or 1), and the loss units
are the instance images only: with one class image per instance image, that is DreamBooth's
instance mean + prior_loss_weight * class mean. Which parameters train is the method's business; the task
only asks each part for its trainable parameters (UNet and text encoders can get their own learning rates).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from tunesmith.data.images.latent_cache import cached_latents, cached_text_embeddings, latent_caching_allowed
from tunesmith.tasks.diffusion.collate import BatchSpec, DiffusionCollator
from tunesmith.tasks.diffusion.objective import (DiffusionObjective, per_example_error, target, timestep_weights,
                                                 training_scheduler)
from tunesmith.tasks.diffusion.text import encode_text, tokenize
from tunesmith.train.task import BatchCounts, Task

TEXT_ENCODERS = ("text_encoder", "text_encoder_2")


class DiffusionModules(nn.Module):
    """The pipeline's networks as one module: what trains (UNet, maybe text encoders) and the frozen VAE."""

    def __init__(self, pipeline):
        super().__init__()
        self.unet, self.vae = pipeline.unet, pipeline.vae
        self.text_encoder = pipeline.text_encoder
        self.text_encoder_2 = getattr(pipeline, "text_encoder_2", None)

    def text_encoders(self) -> list[nn.Module]:
        return [encoder for encoder in (self.text_encoder, self.text_encoder_2) if encoder is not None]


class DiffusionLoss(nn.Module):
    """Batch -> weighted summed denoising error / normaliser."""

    def __init__(self, model: DiffusionModules, scheduler, objective: DiffusionObjective):
        super().__init__()
        self.model, self.scheduler, self.objective = model, scheduler, objective

    def forward(self, batch: dict, normaliser: int) -> torch.Tensor:
        latents = self.latents(batch)
        text = self.text(batch)
        noise, timesteps = batch["noise"].to(latents.dtype), batch["timesteps"]
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        extra = {}
        if "time_ids" in batch:
            extra["added_cond_kwargs"] = {"text_embeds": text["pooled_prompt_embeds"], "time_ids": batch["time_ids"]}
        prediction = self.model.unet(noisy, timesteps, text["prompt_embeds"], return_dict=False, **extra)[0]
        wanted = target(self.scheduler, latents, noise, timesteps, self.objective.prediction_type)
        weights = batch["weight"].float()
        if batch["min_snr"]:
            weights = weights * timestep_weights(self.scheduler, timesteps, self.objective)
        return (per_example_error(prediction, wanted) * weights).sum() / normaliser

    def latents(self, batch: dict) -> torch.Tensor:
        """Scaled VAE latents sampled with the batch's draw (from cached distributions or by encoding pixels)."""
        vae = self.model.vae
        if "latent_parameters" in batch:
            parameters = batch["latent_parameters"]
        else:
            # Each image once: a validation batch holds every image once per fixed timestep, and encoding the
            # copies would cost that many VAE passes (and that batch's activations) for the same latents.
            pixels = batch["pixels"]
            distinct, copies = torch.unique(pixels.flatten(1), dim=0, return_inverse=True)
            with torch.no_grad():
                encoded = vae.encode(distinct.view(-1, *pixels.shape[1:]).to(vae.dtype)).latent_dist.parameters
            parameters = encoded[copies]
        mean, logvar = parameters.float().chunk(2, dim=1)
        std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))  # as diffusers' DiagonalGaussianDistribution
        sample = mean + std * batch["latent_noise"]
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return (sample - shift) * vae.config.scaling_factor

    def text(self, batch: dict) -> dict[str, torch.Tensor]:
        if "prompt_embeds" in batch:
            return batch
        ids = [batch["input_ids"]] + ([batch["input_ids_2"]] if "input_ids_2" in batch else [])
        return encode_text(self.model.text_encoders(), ids)


class FixedSize(Sequence):
    """Held-out images all at one square size (the loop batches them in order, whatever their buckets)."""

    def __init__(self, dataset, side: int):
        self.dataset, self.size = dataset, (side, side)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return self.dataset.item(index, self.size, epoch=0)


class DiffusionTask(Task):
    unit = "images"
    memory_advice = ("lower data.resolution, turn on training.gradient_checkpointing, train in bf16 or fp16, or use "
                     "method.name: dreambooth_lora")

    def __init__(self, diffusion_model, train_set, val_set=None, class_set=None,
                 objective: DiffusionObjective | None = None, text_encoder_lr: float | None = None,
                 cache_latents: bool = True, cache_text: bool = True):
        """`diffusion_model`: tunesmith.models.diffusion.DiffusionModel, its trainable parameters already chosen
        by the method. `train_set`/`class_set`/`val_set`: ImageDatasets (class images turn prior preservation on).
        """
        pipeline = diffusion_model.pipeline
        self.pipeline, self.family, self.fingerprint = pipeline, diffusion_model.family, diffusion_model.fingerprint
        self.model = DiffusionModules(pipeline)
        self.objective = dataclasses.replace(objective or DiffusionObjective(),
                                             prediction_type=diffusion_model.prediction_type)
        self.scheduler = training_scheduler(pipeline)
        self.train_set, self.class_set, self.text_encoder_lr = train_set, class_set, text_encoder_lr
        self.val_set = FixedSize(val_set, val_set.settings.resolution) if val_set is not None else []
        self.notes: list[str] = []  # what the plan line should say about caching
        if cache_latents:
            self._cache_latents(val_set)
        text_cache = self._cache_text(val_set) if cache_text else None
        tokenizers = [pipeline.tokenizer] + ([pipeline.tokenizer_2] if self.model.text_encoder_2 is not None else [])
        self.batch_spec = BatchSpec(
            tokenizers=tokenizers, latent_channels=pipeline.vae.config.latent_channels,
            vae_scale_factor=pipeline.vae_scale_factor, num_train_timesteps=self.scheduler.config.num_train_timesteps,
            objective=self.objective, seed=train_set.settings.seed, sdxl=self.model.text_encoder_2 is not None,
            text_cache=text_cache,
        )

    # -- the Task seam ---------------------------------------------------------------------------------
    def loss_module(self) -> nn.Module:
        return DiffusionLoss(self.model, self.scheduler, self.objective)

    def train_batches(self, cfg):
        collator = DiffusionCollator(self.batch_spec, self.class_set, len(self.train_set), training=True)
        return self.train_set.sampler(cfg.batch_size), collator

    def eval_collator(self):
        return DiffusionCollator(self.batch_spec, training=False)

    def counts(self, batch: dict) -> BatchCounts:
        return BatchCounts(batch["instances"], len(batch["weight"]))

    def blank(self, batch: dict) -> dict:
        batch["weight"] = torch.zeros_like(batch["weight"])
        return batch

    def param_groups(self, weight_decay: float, learning_rate: float) -> list[dict]:
        """UNet at `learning_rate`, text encoders at `text_encoder_lr` (DreamBooth often trains them slower)."""
        parts = [(self.model.unet, learning_rate)]
        parts += [(encoder, self.text_encoder_lr or learning_rate) for encoder in self.model.text_encoders()]
        groups = []
        for module, lr in parts:
            trainable = [p for p in module.parameters() if p.requires_grad]
            groups += [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": weight_decay, "lr": lr},
                       {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0, "lr": lr}]
        return [group for group in groups if group["params"]]

    # -- caches ----------------------------------------------------------------------------------------
    def _cache_latents(self, val_set) -> None:
        for dataset in (self.train_set, self.class_set, val_set):
            allowed, why = latent_caching_allowed(dataset.settings) if dataset is not None else (True, "")
            if not allowed:
                self.notes.append(why)
                return
        vae = self.model.vae
        self.train_set.latents = cached_latents(vae, self.train_set, list(enumerate(self.train_set.buckets)),
                                                self.fingerprint)
        if self.class_set is not None:
            sizes = sorted(set(self.train_set.buckets))
            wanted = [(j, size) for j in range(len(self.class_set)) for size in sizes]
            self.class_set.latents = cached_latents(vae, self.class_set, wanted, self.fingerprint)
        if val_set is not None:
            side = val_set.settings.resolution
            val_set.latents = cached_latents(vae, val_set, [(i, (side, side)) for i in range(len(val_set))],
                                             self.fingerprint)
        self.notes.append("latents cached")

    def _cache_text(self, val_set) -> dict | None:
        encoders = self.model.text_encoders()
        if any(p.requires_grad for encoder in encoders for p in encoder.parameters()):
            self.notes.append("text embeddings not cached: a text encoder trains")
            return None
        datasets = [d for d in (self.train_set, self.class_set, val_set) if d is not None]
        captions = [record.caption for dataset in datasets for record in dataset.records]
        if any(dataset.settings.caption_dropout > 0 for dataset in datasets):
            captions.append("")  # what a dropped caption becomes
        tokenizers = [self.pipeline.tokenizer] + ([self.pipeline.tokenizer_2] if len(encoders) > 1 else [])
        self.notes.append("text embeddings cached")
        return cached_text_embeddings(lambda batch: encode_text(encoders, tokenize(tokenizers, batch)), captions,
                                      self.fingerprint, self.family.name)
