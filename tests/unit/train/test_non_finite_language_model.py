"""NaN and inf on the language-model side, through run() on the tiny model: an inf gradient (finite loss) and a nan
loss are each dropped and named, a non-default training.max_bad_steps is the limit, and a run stopped by it writes
no adapter and no report."""

import math

import pytest
import torch

from tunesmith import events as ev
from tunesmith.errors import TunesmithError
from tunesmith.run import run


def poisoned_loss(poison: dict):
    """The language-model loss, poisoned on the training steps `poison` names (step -> "inf gradient" | "nan loss").
    One micro-batch per step, so the n-th training forward after training started is step n."""
    from tunesmith.tasks.causal_lm import task

    original, calls = task.causal_lm_loss, {"started": False, "n": 0}

    def loss(model, batch, *args, **kwargs):
        value = original(model, batch, *args, **kwargs)
        if not (calls["started"] and torch.is_grad_enabled()):
            return value
        calls["n"] += 1
        kind = poison.get(calls["n"])
        if kind == "nan loss":
            return value * math.nan
        if kind == "inf gradient":  # the loss stays finite, every gradient it sends back is inf
            value.register_hook(lambda grad: grad * math.inf)
        return value

    return loss, calls


@pytest.mark.slow  # one tiny run (about 5 s here)
def test_an_inf_gradient_and_a_nan_loss_count_to_a_non_default_limit_and_leave_no_adapter(
        tiny_run_config, tmp_path, monkeypatch):
    loss, calls = poisoned_loss({2: "inf gradient", 4: "nan loss"})
    monkeypatch.setattr("tunesmith.tasks.causal_lm.task.causal_lm_loss", loss)
    config = tiny_run_config(training={"max_steps": 6, "max_bad_steps": 2, "gradient_accumulation": 1,
                                       "save_every": 3, "eval_every": 100},
                             eval={"compare_base": False, "metrics": ["perplexity"]})
    seen = []

    def on_event(event):
        seen.append(event)
        calls["started"] = calls["started"] or isinstance(event, ev.TrainingStarted)

    with pytest.raises(TunesmithError, match=r"training stopped at step 4: 2 steps had a non-finite loss or "
                                             r"gradient, none of them applied") as info:
        run(config, on_event=on_event)
    skipped = [(e.step, e.bad_steps, e.message) for e in seen if isinstance(e, ev.StepSkipped)]
    assert [s[:2] for s in skipped] == [(2, 1), (4, 2)]  # the default limit (3) would have gone on
    assert skipped[0][2].startswith("step 2: the loss or a gradient is not finite (nan/inf); the step was not "
                                    "applied (1 of at most 2)")
    assert [e.step for e in seen if isinstance(e, ev.Step)] == [1, 3]
    assert [e.message for e in seen if isinstance(e, ev.RunFailed)] == [str(info.value)]
    run_dir = tmp_path / "run"
    assert not (run_dir / "adapter").exists() and not list(run_dir.glob("report.*"))
    from safetensors.torch import load_file

    from tunesmith.train.checkpoint import complete_checkpoints

    saved = load_file(complete_checkpoints(run_dir)[-1] / "trainable.safetensors")  # checkpoint 3: finite
    assert saved and all(torch.isfinite(t).all() for t in saved.values())
