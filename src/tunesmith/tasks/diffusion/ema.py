"""An exponential moving average of the trained weights (full DreamBooth's `ema: true`), kept in the checkpoints.

diffusers' EMAModel holds the average; its decay warms up (1 - (1 + step)^-2/3, capped at ema_decay), so short
fine-tunes average over their own length instead of staying at the base weights. It is a companion of the loop
(train/task.py): stepped after every applied optimizer step and written into each checkpoint under its manifest,
so a resumed run continues the same average and a checkpoint never holds weights without their average.
"""

from __future__ import annotations

from pathlib import Path

from tunesmith.errors import TunesmithError


class WeightAverage:
    def __init__(self, parameters, decay: float):
        from diffusers.training_utils import EMAModel

        self.parameters = list(parameters)
        self.average = EMAModel(self.parameters, decay=decay, use_ema_warmup=True)

    def after_step(self, step: int) -> None:
        self.average.step(self.parameters)

    def state_dict(self) -> dict:
        return self.average.state_dict()  # counters and the averaged tensors ("shadow_params")

    def load_state_dict(self, state: dict, folder: Path) -> None:
        shadow = state.get("shadow_params") or []
        if len(shadow) != len(self.parameters) or any(s.shape != p.shape for s, p in zip(shadow, self.parameters)):
            raise TunesmithError(f"--resume: the weight average in {folder} does not match the trained weights; it "
                                 "was written for another method or model")
        shadow = [s.to(p.device) for s, p in zip(shadow, self.parameters)]
        self.average.load_state_dict({**state, "shadow_params": shadow})

    def copy_to_weights(self) -> None:
        """Put the average into the trained parameters (what the run then saves)."""
        self.average.copy_to(self.parameters)
