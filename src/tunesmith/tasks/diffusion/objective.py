"""The denoising objective: what the UNet must predict, and how each example's error is weighted.

Training noises latents with DDPM's forward process (a DDPMScheduler built from the model's scheduler config, as
diffusers' training scripts do, whatever sampler the pipeline uses) and regresses the UNet output on the noise
(epsilon models) or on the velocity alpha_t * noise - sigma_t * x0 (v-prediction models: SD 2.x 768). Min-SNR
weighting (Hang et al., 2023) caps the weight of low-noise timesteps at gamma / SNR; for v-prediction the weight
is min(SNR, gamma) / (SNR + 1), because the v target already carries a factor of SNR + 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tunesmith.errors import ConfigError


@dataclass(frozen=True)
class DiffusionObjective:
    prediction_type: str = "epsilon"  # the model's: "epsilon" or "v_prediction"
    prior_loss_weight: float = 1.0  # weight of the class (prior-preservation) images' loss
    snr_gamma: float | None = None  # min-SNR weighting; 5.0 is the paper's choice; None: plain mean
    noise_offset: float = 0.0  # adds offset * N(0, 1) per image and channel to the noise (darker darks)

    def __post_init__(self):
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ConfigError(f"prediction_type: '{self.prediction_type}' is not one of epsilon, v_prediction")
        if self.snr_gamma is not None and self.snr_gamma <= 0:
            raise ConfigError(f"method.snr_gamma: {self.snr_gamma} must be positive (5.0 is common) or unset")
        if self.prior_loss_weight < 0:
            raise ConfigError(f"method.prior_loss_weight: {self.prior_loss_weight} must be at least 0")


def training_scheduler(pipeline):
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(pipeline.scheduler.config)


def target(scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor,
           prediction_type: str) -> torch.Tensor:
    if prediction_type == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    return noise


def signal_to_noise(scheduler, timesteps: torch.Tensor) -> torch.Tensor:
    alphas = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
    return alphas / (1.0 - alphas)


def timestep_weights(scheduler, timesteps: torch.Tensor, objective: DiffusionObjective) -> torch.Tensor:
    """Per-example loss weight from the timestep: 1, or min-SNR's."""
    if objective.snr_gamma is None:
        return torch.ones(timesteps.shape, device=timesteps.device)
    snr = signal_to_noise(scheduler, timesteps)
    capped = torch.clamp(snr, max=objective.snr_gamma)
    return capped / (snr + 1.0) if objective.prediction_type == "v_prediction" else capped / snr


def per_example_error(prediction: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each example, in fp32 (bf16 squares lose the small errors late in training)."""
    return ((prediction.float() - wanted.float()) ** 2).flatten(1).mean(dim=1)
