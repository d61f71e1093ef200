"""Options every diffusion method shares: the objective's knobs, the text encoder, and (DreamBooth) the prior."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, ValidationInfo, field_validator

from tunesmith.config.section import Section, invalid


class DiffusionOptions(Section):
    prior_preservation: ClassVar[bool] = False  # whether data.class_prompt may add the class term

    train_text_encoder: bool = Field(False, description="also train the text encoder(s) (SDXL: both)")
    text_encoder_lr: float | None = Field(None, gt=0, description="the text encoders' learning rate; default "
                                                                  "training.learning_rate")
    snr_gamma: float | None = Field(None, gt=0, description="min-SNR loss weighting (5.0 is the paper's); unset: "
                                                            "plain mean")
    noise_offset: float = Field(0.0, ge=0.0, description="offset noise per image and channel (0.05-0.1: darker "
                                                         "darks, brighter brights)")

    @field_validator("text_encoder_lr")
    @classmethod
    def _rate_of_a_trained_encoder(cls, rate: float | None, info: ValidationInfo) -> float | None:
        if rate is not None and not info.data.get("train_text_encoder"):
            raise invalid("used only with train_text_encoder: true")
        return rate

    def objective(self):
        """The task's DiffusionObjective (its prediction type is the model's, set by the task)."""
        from tunesmith.tasks.diffusion.objective import DiffusionObjective

        weight = self.prior_loss_weight if self.prior_preservation else 1.0
        return DiffusionObjective(prior_loss_weight=weight, snr_gamma=self.snr_gamma, noise_offset=self.noise_offset)


class PriorOptions(Section):
    """DreamBooth's prior preservation: with data.class_prompt, class images train beside the subject's."""

    prior_preservation: ClassVar[bool] = True

    prior_loss_weight: float = Field(1.0, ge=0.0, description="weight of the class images' loss")
