"""Image examples to a diffusion batch, with every random draw (noise, timesteps, latent sample) made here.

Drawing on the CPU from a generator per example, seeded by (seed, epoch, the example), makes a step depend only
on what it trains on: resume repeats the exact noise, a batch cut into micro-batches (`batch_size: auto`) draws
the same noise as the whole batch, and the device never waits on random numbers. With prior
preservation each instance image is paired with a class image prepared at the same bucket size (so both share one
UNet forward); the pairing rotates through the class images epoch by epoch. Validation batches use fixed
timesteps and noise per example, so the held-out denoising loss is comparable across steps and runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from tunesmith.tasks.diffusion.objective import DiffusionObjective
from tunesmith.tasks.diffusion.text import time_ids, tokenize

VALIDATION_TIMESTEPS = (0.1, 0.3, 0.5, 0.7, 0.9)  # fractions of the schedule each held-out image is scored at


@dataclass
class BatchSpec:
    """What the collator needs to know about the model."""

    tokenizers: list
    latent_channels: int
    vae_scale_factor: int
    num_train_timesteps: int
    objective: DiffusionObjective
    seed: int
    sdxl: bool
    text_cache: dict | None = None  # caption -> {"prompt_embeds": ..., "pooled_prompt_embeds": ...}


class DiffusionCollator:
    def __init__(self, spec: BatchSpec, class_set=None, instance_count: int = 1, training: bool = True):
        self.spec, self.class_set, self.instance_count, self.training = spec, class_set, instance_count, training

    def __call__(self, examples: list[dict]) -> dict:
        instances = len(examples)
        weights = [1.0] * instances
        if self.training and self.class_set is not None:
            examples = examples + [self._class_pair(e) for e in examples]
            weights += [self.spec.objective.prior_loss_weight] * instances
        repeat = 1 if self.training else len(VALIDATION_TIMESTEPS)
        examples = [{**e, "copy": r} if repeat > 1 else e for e in examples for r in range(repeat)]
        weights = [w for w in weights for _ in range(repeat)]

        batch = {"instances": instances * repeat, "weight": torch.tensor(weights),
                 "min_snr": self.training, **self._images(examples), **self._text(examples)}
        batch.update(self._draws(examples, batch))
        if self.spec.sdxl:
            batch["time_ids"] = torch.stack([time_ids(e["original_size"], e["crop_top_left"], e["target_size"])
                                             for e in examples])
        return batch

    def _class_pair(self, example: dict) -> dict:
        epoch, index = example["epoch"], example["index"]
        partner = (epoch * self.instance_count + index) % len(self.class_set)
        size = (example["target_size"][1], example["target_size"][0])
        # Which instance it is paired with is part of its identity: two instances may share a class image.
        return {**self.class_set.item(partner, size, epoch=epoch), "pair_of": index}

    @staticmethod
    def _images(examples: list[dict]) -> dict:
        if all("latent_parameters" in e for e in examples):
            return {"latent_parameters": torch.stack([e["latent_parameters"] for e in examples])}
        return {"pixels": torch.stack([e["pixels"] for e in examples])}

    def _text(self, examples: list[dict]) -> dict:
        captions = [e["caption"] for e in examples]
        if self.spec.text_cache is not None:
            found = [self.spec.text_cache[c] for c in captions]
            return {name: torch.stack([f[name] for f in found]) for name in found[0]}
        ids = tokenize(self.spec.tokenizers, captions)
        return {"input_ids": ids[0], **({"input_ids_2": ids[1]} if len(ids) > 1 else {})}

    def _draws(self, examples: list[dict], batch: dict) -> dict:
        spec = self.spec
        if "latent_parameters" in batch:
            shape = batch["latent_parameters"].shape
            shape = (shape[1] // 2, *shape[2:])
        else:
            pixels = batch["pixels"].shape
            scale = spec.vae_scale_factor
            shape = (spec.latent_channels, pixels[2] // scale, pixels[3] // scale)
        per_example = [self._example_draws(self._generator(e), shape) for e in examples]
        draws = {name: torch.stack([d[name] for d in per_example]) for name in per_example[0]}
        if not self.training:
            fixed = [int(f * spec.num_train_timesteps) for f in VALIDATION_TIMESTEPS]
            draws["timesteps"] = torch.tensor([fixed[i % len(fixed)] for i in range(len(examples))])
        return draws

    def _generator(self, example: dict) -> torch.Generator:
        epoch = example["epoch"] if self.training else 0
        key = (f"{self.spec.seed}:{self.training}:{epoch}/{example['kind']}/{example['index']}"
               f"/{example.get('pair_of', '')}/{example.get('copy', '')}")
        return torch.Generator().manual_seed(int(hashlib.sha256(key.encode()).hexdigest()[:15], 16))

    def _example_draws(self, generator: torch.Generator, shape: tuple) -> dict:
        draws = {"latent_noise": torch.randn(shape, generator=generator), "noise": torch.randn(shape, generator=generator)}
        if self.spec.objective.noise_offset:
            draws["noise"] += self.spec.objective.noise_offset * torch.randn(shape[0], generator=generator)[:, None, None]
        if self.training:
            draws["timesteps"] = torch.randint(0, self.spec.num_train_timesteps, (), generator=generator)
        return draws
