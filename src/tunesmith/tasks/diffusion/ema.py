"""An exponential moving average of the trained weights (full DreamBooth's `ema: true`), kept in the checkpoints.

diffusers' EMAModel holds the average; its decay warms up (1 - (1 + step)^-2/3, capped at ema_decay), so short
fine-tunes average over their own length instead of staying at the base weights. It is updated once per optimizer
step and written into each checkpoint folder as ema.safetensors (the averaged tensors) and ema.json (its counters),
so a resumed run continues the same average.

The loop saves a checkpoint before it calls on_step_end, so the checkpoint event brings the average up to that
step first; `update_to` counts steps, so each is averaged in once whichever comes first.
"""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith import events as ev
from tunesmith.errors import TunesmithError

TENSORS, COUNTERS = "ema.safetensors", "ema.json"


class WeightAverage:
    def __init__(self, parameters, decay: float, run_dir: Path, say=print):
        self.parameters = list(parameters)
        self.decay, self.run_dir, self.say = decay, Path(run_dir), say
        self.average = self._fresh()
        self.step = 0  # the last optimizer step averaged in

    def _fresh(self):
        from diffusers.training_utils import EMAModel

        return EMAModel(self.parameters, decay=self.decay, use_ema_warmup=True)

    def update_to(self, step: int) -> None:
        if step > self.step:
            self.average.step(self.parameters)
            self.step = step

    def __call__(self, event) -> None:
        """As an event subscriber: save with every checkpoint, load from the one a resumed run starts at."""
        if isinstance(event, ev.CheckpointSaved):
            self.update_to(event.step)
            self.save(Path(event.path))
        elif isinstance(event, ev.TrainingStarted) and event.resumed and event.step:
            self.load(event.step)

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        state = self.average.state_dict()
        tensors = {str(i): t.detach().contiguous() for i, t in enumerate(state.pop("shadow_params"))}
        save_file(tensors, str(folder / TENSORS))
        (folder / COUNTERS).write_text(json.dumps({**state, "step": self.step}))

    def load(self, step: int) -> None:
        """The average saved with the checkpoint of `step` (the one the loop resumed from)."""
        from safetensors.torch import load_file

        from tunesmith.train.checkpoint import PREFIX

        folder = self.run_dir / "checkpoints" / f"{PREFIX}{step:07d}"
        self.step = step
        if not (folder / TENSORS).is_file() or not (folder / COUNTERS).is_file():
            self.say(f"--resume: {folder} holds no weight average ({TENSORS}); it restarts from the resumed weights")
            self.average = self._fresh()
            return
        counters = json.loads((folder / COUNTERS).read_text())
        tensors = load_file(str(folder / TENSORS))
        if sorted(tensors) != sorted(map(str, range(len(self.parameters)))) or any(
                tensors[str(i)].shape != p.shape for i, p in enumerate(self.parameters)):
            raise TunesmithError(f"--resume: {folder / TENSORS} does not match the trained weights; it was written "
                                 "for another method or model")
        counters.pop("step")
        shadow = [tensors[str(i)].to(p.device) for i, p in enumerate(self.parameters)]
        self.average.load_state_dict({**counters, "shadow_params": shadow})

    def copy_to_weights(self) -> None:
        """Put the average into the trained parameters (what the run then saves)."""
        self.average.copy_to(self.parameters)
