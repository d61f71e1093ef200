"""Over- and underfitting from a run's metrics.jsonl: the loss curves as a PNG, and one diagnosis line.

- overfitting: validation loss rose clearly above its best while training loss kept falling;
- unstable: validation loss rose and training loss did not fall either (the learning rate is the usual cause);
- underfitting: validation loss still falling at the end, or training loss barely moved;
- converged: validation loss flattened out.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

MIN_EVALUATIONS = 3
RISE = 0.03  # validation loss this far above its best counts as rising
STILL_FALLING = 0.02  # a drop this large over the last third of evaluations: not done yet
BARELY_MOVED = 0.05  # training loss that fell less than this share from start to end did not learn much


@dataclass(frozen=True)
class Curves:
    train_steps: list[int]
    train_loss: list[float]
    eval_steps: list[int]
    val_loss: list[float]


@dataclass(frozen=True)
class Diagnosis:
    kind: str  # overfitting, unstable, underfitting, converged, unknown
    line: str
    best_step: int | None = None
    best_val_loss: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def read_curves(path: Path) -> Curves | None:
    """The train and eval records of a metrics.jsonl ({"type": "train", "step", "loss"}, {"type": "eval", "step",
    "val_loss"}), or None when the run has no such file."""
    if not path.is_file():
        return None
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    train = [(r["step"], r["loss"]) for r in records if r.get("type") == "train" and _finite(r.get("loss"))]
    evals = [(r["step"], r["val_loss"]) for r in records if r.get("type") == "eval" and _finite(r.get("val_loss"))]
    return Curves([s for s, _ in train], [v for _, v in train], [s for s, _ in evals], [v for _, v in evals])


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _change(new: float, old: float) -> float:
    """new / old - 1, for losses that may reach zero."""
    return new / old - 1 if old > 0 else (0.0 if new == old else math.inf)


def _window(values: list[float]) -> int:
    return max(1, len(values) // 10)


def diagnose(curves: Curves) -> Diagnosis:
    val, steps = curves.val_loss, curves.eval_steps
    if len(val) < MIN_EVALUATIONS:
        return Diagnosis("unknown", f"fit not diagnosed: {len(val)} validation point(s), at least {MIN_EVALUATIONS} "
                                    "needed; lower training.eval_every or add validation data")
    best = min(range(len(val)), key=val.__getitem__)
    best_step, best_loss = steps[best], val[best]
    rise = _change(val[-1], best_loss)
    if best < len(val) - 1 and rise > RISE:
        before = [loss for step, loss in zip(curves.train_steps, curves.train_loss) if step <= best_step]
        after = [loss for step, loss in zip(curves.train_steps, curves.train_loss) if step > best_step]
        rose = (f"validation loss rose {100 * rise:.0f}% from its best {best_loss:.3f} at step {best_step} to "
                f"{val[-1]:.3f} at step {steps[-1]}")
        if before and after and _mean(after[-_window(after):]) < _mean(before[-_window(before):]):
            return Diagnosis("overfitting", f"overfitting: {rose} while training loss kept falling; train fewer "
                                            f"epochs (stop near step {best_step}), add dropout, or add data",
                             best_step, best_loss)
        return Diagnosis("unstable", f"unstable: {rose} and training loss did not fall either; lower the learning "
                                     "rate", best_step, best_loss)
    start = len(val) - max(2, math.ceil(len(val) / 3))
    recent_drop = -_change(val[-1], val[start])
    if recent_drop > STILL_FALLING:
        return Diagnosis("underfitting", f"underfitting: validation loss still falling ({100 * recent_drop:.0f}% over "
                                         f"the last {len(val) - start} evaluations, to {val[-1]:.3f}); train more "
                                         "epochs, or raise the learning rate or the rank", best_step, best_loss)
    train = curves.train_loss
    if train:
        learned = -_change(_mean(train[-_window(train):]), _mean(train[:_window(train)]))
        if learned < BARELY_MOVED:
            return Diagnosis("underfitting", f"underfitting: training loss barely moved ({100 * learned:.0f}% lower at "
                                             "the end); raise the learning rate or the rank, or train longer",
                             best_step, best_loss)
    return Diagnosis("converged", f"converged: validation loss flattened at {best_loss:.3f} (best at step {best_step}); "
                                  "more epochs would not help, this length is right", best_step, best_loss)


def plot_curves(curves: Curves, diagnosis: Diagnosis, path: Path) -> Path:
    """Training and validation loss against step, the best step marked; a PNG at `path`."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend, Agg renders the PNG

    figure = Figure(figsize=(7, 4), dpi=100)
    axes = figure.subplots()
    if curves.train_steps:
        axes.plot(curves.train_steps, curves.train_loss, color="#9aa5b1", linewidth=1, label="training loss")
    if curves.eval_steps:
        axes.plot(curves.eval_steps, curves.val_loss, "o-", color="#1f6feb", label="validation loss")
    if diagnosis.best_step is not None:
        axes.axvline(diagnosis.best_step, color="#2da44e", linestyle="--", linewidth=1)
        axes.plot([diagnosis.best_step], [diagnosis.best_val_loss], "*", color="#2da44e", markersize=14,
                  label=f"best: step {diagnosis.best_step}")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(diagnosis.kind)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
