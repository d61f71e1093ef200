"""`training.learning_rate: auto`: a learning-rate range test before training (Smith, "Cyclical Learning Rates for
Training Neural Networks", 2017; fastai's lr_find).

The test trains STEPS optimizer steps on real training batches (each step the window of batches a training step
takes), at rates rising exponentially over four decades centred on the method's default rate, smooths the loss with
a bias-corrected exponential average, and stops early once the smoothed loss is DIVERGED times its lowest. The rate chosen is a tenth of the rate at the
lowest smoothed loss: one decade below where the loss stops falling and starts to diverge (fastai's "minimum / 10").
That rule, rather than the steepest descent, because with a few tens of noisy points the steepest slope is a
derivative of noise and jumps between neighbouring rates, while the minimum is one robust point; the steepest rate is
still recorded in lr_range.json. The test changes nothing else: the trained tensors, buffers, random state, loss
scaler and optimizer state are restored afterwards, so training is the run it would have been with that rate set
explicitly. When the curve shows nothing to decide on (the loss never fell, or rose from the first rates), the
method's default rate is used, and the reason says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

STEPS = 32
DECADES = 2  # tested on each side of the centre
UNKNOWN_CENTRE = 1e-3  # the centre when no method default is known (a bare TrainingConfig)
SMOOTHING = 0.8  # weight of the past in the exponential average (about a 5-step window)
DIVERGED = 4.0  # the smoothed loss this many times its lowest ends the test (as fastai's lr_find)
MIN_FALL = 0.05  # the smoothed loss must fall by this share of its start for the curve to mean anything
# The first EARLY rates are too low to train: their mean loss is where the curve starts, a divergence is not
# looked for among them (one lucky batch is not a baseline), and a lowest point among them means the loss rose.
EARLY = 3
FILE, PLOT = "lr_range.json", "lr_range.png"


@dataclass
class Choice:
    rate: float
    reason: str
    fallback: bool  # the test could not decide: the method's default
    low: float
    high: float
    rates: list[float] = field(default_factory=list)  # tried, in order (fewer than STEPS when it diverged)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    steepest: float | None = None  # the rate of steepest descent of the smoothed loss, for comparison

    @property
    def tried(self) -> int:
        return len(self.rates)


def rates(centre: float, steps: int = STEPS) -> list[float]:
    low, high = centre / 10**DECADES, centre * 10**DECADES
    return [low * (high / low) ** (i / (steps - 1)) for i in range(steps)]


def smooth(losses: list[float]) -> list[float]:
    average, out = 0.0, []
    for i, loss in enumerate(losses, 1):
        average = SMOOTHING * average + (1 - SMOOTHING) * loss
        out.append(average / (1 - SMOOTHING**i))
    return out


def sweep(step: Callable[[float], float], centre: float, steps: int = STEPS) -> tuple[list[float], list[float]]:
    """Run `step(rate) -> loss` at rising rates until the loss diverges; returns (rates tried, losses)."""
    tried, losses = [], []
    for rate in rates(centre, steps):
        loss = step(rate)
        tried.append(rate)
        losses.append(loss)
        if not math.isfinite(loss):
            break
        smoothed = smooth(losses)
        if len(losses) > EARLY and smoothed[-1] > DIVERGED * min(smoothed):
            break
    return tried, losses


def choose(tried: list[float], losses: list[float], centre: float, default: float | None) -> Choice:
    """The rate to train with; `default` (the method's rate) when the curve cannot decide, None if there is none."""
    finite = [loss for loss in losses if math.isfinite(loss)]
    smoothed = smooth(finite)
    low, high = rates(centre, 2)
    curve = {"low": low, "high": high, "rates": tried, "losses": losses, "smoothed": smoothed}
    lowest = min(range(len(smoothed)), key=smoothed.__getitem__) if smoothed else 0
    start = sum(finite[:EARLY]) / len(finite[:EARLY]) if finite else 0.0
    fall = (start - smoothed[lowest]) / abs(start) if start else 0.0
    span = f"{len(tried)} rates from {low:.1e} to {tried[-1]:.1e}" if tried else "no rates"
    if len(smoothed) <= EARLY or lowest < EARLY:
        problem = f"the loss rose from the first rates ({span})"
    elif fall < MIN_FALL:
        problem = f"the smoothed loss fell only {100 * fall:.1f}% ({span})"
    else:
        rate = _round(tried[lowest] / 10)
        still = "; it was still falling at the top of the range" if lowest == len(smoothed) - 1 else ""
        reason = (f"range test: a tenth of {tried[lowest]:.2e}, where the smoothed loss was lowest "
                  f"({smoothed[lowest]:.4g}, down {100 * fall:.0f}%){still}; {span}")
        return Choice(rate, reason, False, **curve, steepest=_steepest(tried, smoothed, lowest))
    if default is None:
        from tunesmith.errors import ConfigError

        raise ConfigError(f"training.learning_rate: auto: the range test could not decide: {problem}; "
                          "set training.learning_rate to a number")
    return Choice(default, f"range test could not decide: {problem}; using the method's default {default:g}", True,
                  **curve)


def _steepest(tried: list[float], smoothed: list[float], lowest: int) -> float | None:
    slopes = [(smoothed[i + 1] - smoothed[i]) / math.log10(tried[i + 1] / tried[i]) for i in range(lowest)]
    return _round(tried[min(range(len(slopes)), key=slopes.__getitem__)]) if slopes else None


def _round(rate: float) -> float:
    """Three significant digits, so the printed rate is the rate trained with (and can be set explicitly)."""
    return float(f"{rate:.3g}")


def save(run_dir: Path, choice: Choice) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / FILE).write_text(json.dumps(asdict(choice), indent=1))
    if choice.rates:
        plot(choice, run_dir / PLOT)


def saved(run_dir: Path) -> Choice | None:
    """The choice a run made before (resuming reuses it instead of testing again), or None."""
    path = run_dir / FILE
    if not path.is_file():
        return None
    try:
        return Choice(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None  # unreadable (e.g. killed while writing it): test again


def plot(choice: Choice, path: Path) -> Path:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    figure = Figure(figsize=(7, 4), dpi=100)
    axes = figure.subplots()
    finite = [(r, loss) for r, loss in zip(choice.rates, choice.losses) if math.isfinite(loss)]
    axes.plot([r for r, _ in finite], [loss for _, loss in finite], color="#9aa5b1", linewidth=1, label="loss")
    axes.plot([r for r, _ in finite], choice.smoothed, color="#1f6feb", label="smoothed loss")
    label = "default (test undecided)" if choice.fallback else "chosen"
    axes.axvline(choice.rate, color="#2da44e", linestyle="--", label=f"{label}: {choice.rate:g}")
    if choice.steepest is not None:
        axes.axvline(choice.steepest, color="#bf8700", linestyle=":", label=f"steepest descent: {choice.steepest:g}")
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    axes.set_title("learning-rate range test")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


class Restored:
    """Everything a range test changes, put back on exit: tensors (copied to CPU), random state, loss scaler."""

    def __init__(self, tensors: list[torch.Tensor], scaler=None):
        self.tensors, self.scaler = tensors, scaler

    def __enter__(self):
        from tunesmith.train.checkpoint import rng_state

        self.copies = [t.detach().to("cpu", copy=True) for t in self.tensors]
        self.rng = rng_state()
        self.scaler_state = self.scaler.state_dict() if self.scaler is not None else None
        return self

    def __exit__(self, *exc):
        from tunesmith.train.checkpoint import set_rng_state

        with torch.no_grad():
            for tensor, copy in zip(self.tensors, self.copies):
                tensor.copy_(copy)
        set_rng_state(self.rng)
        if self.scaler_state is not None:
            self.scaler.load_state_dict(self.scaler_state)
