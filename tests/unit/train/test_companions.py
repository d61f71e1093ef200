"""Companions: state that trains beside the weights (a weight average) is stepped after each applied optimizer step,
checkpointed under the manifest with them, and resumed exactly."""

import pytest
import torch

from tunesmith.errors import TunesmithError
from tunesmith.train.checkpoint import complete_checkpoints, load_companion, verify_checkpoint
from tunesmith.train.loop import train

from tests.unit.train.test_task_seam import Crash, accelerator, config, fresh_task


class RunningSum:
    """The sum of the body's weight after each step, and the steps it saw."""

    def __init__(self, model):
        self.model, self.total, self.steps = model, torch.zeros_like(model.body.weight), []

    def after_step(self, step):
        self.total += self.model.body.weight.detach()
        self.steps.append(step)

    def state_dict(self):
        return {"total": self.total.clone(), "steps": list(self.steps)}

    def load_state_dict(self, state, folder):
        if state["total"].shape != self.total.shape:
            raise TunesmithError(f"{folder}: not this model's sum")
        self.total, self.steps = state["total"].clone(), list(state["steps"])


def test_a_companion_is_stepped_checkpointed_and_resumed_exactly(tmp_path):
    straight = fresh_task()
    whole = RunningSum(straight.model)
    train(straight, config(), tmp_path / "a", accelerator(), companions={"sum": whole})
    assert whole.steps == list(range(1, 11))

    def crash_after_five(state):
        if state.step == 5:
            raise Crash

    first = fresh_task()
    with pytest.raises(Crash):
        train(first, config(), tmp_path / "b", accelerator(), on_step_end=crash_after_five,
              companions={"sum": RunningSum(first.model)})
    last = complete_checkpoints(tmp_path / "b")[-1]
    verify_checkpoint(last)
    assert {"companion-sum.json", "companion-sum.safetensors"} <= set((last / "manifest.json").read_text().split('"'))
    assert load_companion(last, "sum")["steps"] == [1, 2, 3]
    resumed = fresh_task()
    continued = RunningSum(resumed.model)
    train(resumed, config(), tmp_path / "b", accelerator(), resume=True, companions={"sum": continued})
    assert continued.steps == whole.steps
    torch.testing.assert_close(continued.total, whole.total, atol=1e-6, rtol=0)


def test_a_checkpoint_without_the_companion_resumes_and_says_it_starts_again(tmp_path, capsys):
    def crash_after_three(state):
        if state.step == 3:
            raise Crash

    with pytest.raises(Crash):
        train(fresh_task(), config(), tmp_path / "run", accelerator(), on_step_end=crash_after_three)
    resumed = fresh_task()
    late = RunningSum(resumed.model)
    train(resumed, config(), tmp_path / "run", accelerator(), resume=True, companions={"sum": late})
    assert late.steps == list(range(4, 11))
    folder = tmp_path / "run" / "checkpoints" / "step-0000003"
    assert f"--resume: {folder} holds no sum state; it starts again from the resumed weights" in capsys.readouterr().out
