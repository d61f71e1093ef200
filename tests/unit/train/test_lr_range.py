"""learning_rate: auto: the range test's rule on planted curves, and on the toy regression task a run that picks its
rate trains exactly as a run given that rate, reuses the choice on resume, and leaves the model as it found it."""

import io
import json
import math

import pytest
import torch
from rich.console import Console
from torch import nn

from tests.unit.train.test_task_seam import RegressionTask, accelerator, config
from tunesmith import events as ev
from tunesmith.errors import ConfigError
from tunesmith.train import lr_range
from tunesmith.train.loop import CancelToken, TrainingInterrupted, find_learning_rate, train
from tunesmith.train.progress import TrainingProgress


def valley(tried, bottom, depth=1.0):
    """A loss that falls towards `bottom` (a rate) and climbs steeply after it, in log-rate."""
    return [2.0 - depth * math.exp(-((math.log10(r / bottom)) ** 2)) + max(0.0, math.log10(r / bottom)) ** 2 * 3
            for r in tried]


def test_rates_rise_exponentially_over_four_decades_around_the_centre():
    rates = lr_range.rates(1e-3)
    assert len(rates) == lr_range.STEPS
    assert rates[0] == pytest.approx(1e-5) and rates[-1] == pytest.approx(1e-1)
    ratios = {round(b / a, 9) for a, b in zip(rates, rates[1:])}
    assert len(ratios) == 1


def test_smoothing_is_bias_corrected():
    assert lr_range.smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])
    assert lr_range.smooth([1.0, 3.0])[1] == pytest.approx((0.8 * 0.2 + 3 * 0.2) / (1 - 0.64))


def test_a_tenth_of_the_rate_at_the_lowest_smoothed_loss_is_chosen():
    tried = lr_range.rates(1e-3)
    losses = valley(tried, bottom=1e-2)
    choice = lr_range.choose(tried, losses, 1e-3, default=1e-3)
    smoothed = lr_range.smooth(losses)
    lowest = tried[smoothed.index(min(smoothed))]
    assert not choice.fallback
    assert choice.rate == float(f"{lowest / 10:.3g}")
    assert 1e-3 <= choice.rate <= 3e-3  # one decade under the valley's floor (the smoothing lags it a little)
    assert choice.reason.startswith(f"range test: a tenth of {lowest:.2e}, where the smoothed loss was lowest")
    assert choice.steepest is not None and choice.steepest < lowest


def test_a_curve_that_rises_from_the_start_falls_back_to_the_method_default():
    tried = lr_range.rates(1e-3)
    choice = lr_range.choose(tried, valley(tried, bottom=1e-6), 1e-3, default=2e-4)
    assert choice.fallback and choice.rate == 2e-4
    assert choice.reason.startswith("range test could not decide: the loss rose from the first rates")
    assert choice.reason.endswith("using the method's default 0.0002")


def test_a_flat_curve_falls_back_and_without_a_default_asks_for_a_rate():
    tried = lr_range.rates(1e-3)
    flat = [2.0 + 0.01 * math.sin(i) for i in range(len(tried))]
    assert "the smoothed loss fell only" in lr_range.choose(tried, flat, 1e-3, default=1e-3).reason
    with pytest.raises(ConfigError, match="training.learning_rate: auto: the range test could not decide"):
        lr_range.choose(tried, flat, 1e-3, default=None)


def test_the_sweep_stops_once_the_loss_diverges():
    calls = []

    def step(rate):
        calls.append(rate)
        return 1.0 if rate < 1e-2 else 1.0 + 1e4 * rate

    tried, losses = lr_range.sweep(step, 1e-3)
    assert len(tried) < lr_range.STEPS and tried == calls
    assert lr_range.smooth(losses)[-1] > lr_range.DIVERGED * min(lr_range.smooth(losses))
    assert lr_range.sweep(lambda rate: float("nan"), 1e-3)[0] == [1e-5]


class DropoutRegressor(nn.Module):
    """The toy model with dropout, so a range test that moved the random state would change the run."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(self.drop(torch.relu(self.body(x))))


def fresh():
    torch.manual_seed(0)
    return RegressionTask(DropoutRegressor())


def rate_config(rate, **overrides):
    # Every step on all 32 rows (2 batches of 16): the toy's per-batch losses are too noisy for a curve otherwise.
    cfg = config(learning_rate=rate, max_steps=8, save_every=100, eval_every=100, lr_scheduler="cosine",
                 warmup_steps=2, batch_size=16, **overrides)
    cfg.use_method_learning_rate(0.05)
    return cfg


def steps(seen):
    return [(e.step, e.loss, e.learning_rate) for e in seen if isinstance(e, ev.Step)]


def test_a_run_with_auto_equals_a_run_with_the_chosen_rate(tmp_path):
    auto_task, seen = fresh(), []
    result = train(auto_task, rate_config("auto"), tmp_path / "auto", accelerator(),
                   events=ev.EventStream([seen.append]))
    chosen = next(e for e in seen if isinstance(e, ev.LearningRateChosen))
    assert [e.type for e in seen][0] == "learning_rate_chosen" and not chosen.fallback and not chosen.reused
    assert chosen.low == pytest.approx(5e-4) and chosen.high == pytest.approx(5.0)
    assert result.learning_rate == chosen.rate

    explicit_task, explicit_seen = fresh(), []
    train(explicit_task, rate_config(chosen.rate), tmp_path / "explicit", accelerator(),
          events=ev.EventStream([explicit_seen.append]))
    assert steps(seen) == steps(explicit_seen)  # exactly: same losses, same rate at every step
    for name, value in explicit_task.model.state_dict().items():
        assert torch.equal(auto_task.model.state_dict()[name], value), name

    saved = json.loads((tmp_path / "auto" / lr_range.FILE).read_text())
    assert saved["rate"] == chosen.rate and len(saved["rates"]) == chosen.tried == len(saved["losses"])
    assert (tmp_path / "auto" / lr_range.PLOT).read_bytes()[:4] == b"\x89PNG"


def test_a_resumed_run_reuses_the_choice_and_ends_where_an_uninterrupted_run_does(tmp_path):
    straight = fresh()
    train(straight, rate_config("auto"), tmp_path / "a", accelerator())

    token, seen = CancelToken(), []

    def cancel_at_three(event):
        seen.append(event)
        if isinstance(event, ev.Step) and event.step == 3:
            token.cancel()

    with pytest.raises(TrainingInterrupted):
        train(fresh(), rate_config("auto"), tmp_path / "b", accelerator(), events=ev.EventStream([cancel_at_three]),
              cancel=token)
    first = next(e for e in seen if isinstance(e, ev.LearningRateChosen))
    resumed_task, resumed = fresh(), []
    train(resumed_task, rate_config("auto"), tmp_path / "b", accelerator(), resume=True,
          events=ev.EventStream([resumed.append]))
    again = next(e for e in resumed if isinstance(e, ev.LearningRateChosen))
    assert again.reused and again.tried == 0 and again.rate == first.rate
    assert again.reason.startswith(f"as chosen before, in {lr_range.FILE}: range test: a tenth of")
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed_task.model.state_dict()[name], value, atol=1e-6, rtol=0, msg=name)


def test_the_range_test_alone_leaves_the_model_and_random_state_as_they_were(tmp_path):
    task = fresh()
    before = {name: value.clone() for name, value in task.model.state_dict().items()}
    rng = torch.get_rng_state()
    choice = find_learning_rate(task, rate_config(1e-3), tmp_path, accelerator())
    assert choice.tried >= 5 and choice.rate == json.loads((tmp_path / lr_range.FILE).read_text())["rate"]
    assert all(torch.equal(before[name], value) for name, value in task.model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())
    assert all(p.grad is None for p in task.model.parameters())


def test_the_progress_line_says_the_rate_and_why_and_each_cut():
    output = io.StringIO()
    progress = TrainingProgress(Console(file=output, force_terminal=False, width=200))
    progress(ev.LearningRateChosen(rate=0.0012, reason="range test: a tenth of 1.20e-02", tried=20, low=1e-5,
                                   high=0.1, fallback=False, reused=False))
    progress(ev.BatchSizeReduced(step=3, micro_batch=4, gradient_accumulation=2,
                                 reason="step 3 ran out of memory with micro-batches of 8"))
    assert output.getvalue().splitlines() == [
        "learning rate: 0.0012 (range test: a tenth of 1.20e-02)",
        "batch size: step 3 ran out of memory with micro-batches of 8; step 3 on: micro-batches of 4, up to 2 per "
        "optimizer step",
    ]
