import json
import math

import pytest

from tunesmith.evaluate.fit import Curves, diagnose, plot_curves, read_curves

STEPS = list(range(1, 101))
EVAL_STEPS = list(range(10, 101, 10))


def curves(train, val) -> Curves:
    return Curves(STEPS, [train(s) for s in STEPS], EVAL_STEPS, [val(s) for s in EVAL_STEPS])


def falling(start=3.0, floor=1.0, rate=0.05):
    return lambda step: floor + (start - floor) * math.exp(-rate * step)


def test_validation_rising_while_training_falls_is_overfitting():
    # Validation bottoms out at step 40 and climbs back; training keeps going down.
    result = diagnose(curves(falling(floor=0.2), lambda s: 1.5 + 0.0004 * (s - 40) ** 2))
    assert result.kind == "overfitting" and result.best_step == 40
    assert result.line.startswith("overfitting: validation loss rose")
    assert "stop near step 40" in result.line and "dropout" in result.line and "add data" in result.line


def test_validation_still_falling_at_the_end_is_underfitting():
    result = diagnose(curves(falling(rate=0.01), falling(start=3.2, rate=0.01)))
    assert result.kind == "underfitting" and result.best_step == 100
    assert "still falling" in result.line and "more epochs" in result.line


def test_training_loss_that_barely_moved_is_underfitting():
    result = diagnose(curves(lambda s: 2.5 - 0.001 * s, lambda s: 2.6 + 0.001 * math.sin(s)))
    assert result.kind == "underfitting" and "barely moved" in result.line and "learning rate" in result.line


def test_flat_validation_after_a_real_drop_is_converged():
    result = diagnose(curves(falling(rate=0.1), falling(start=3.1, floor=1.1, rate=0.1)))
    assert result.kind == "converged" and result.line.startswith("converged: validation loss flattened")


def test_both_rising_is_unstable_not_overfitting():
    result = diagnose(curves(lambda s: 1.0 + 0.01 * max(0, s - 40), lambda s: 1.2 + 0.01 * max(0, s - 40)))
    assert result.kind == "unstable" and "lower the learning rate" in result.line


def test_too_few_validation_points_says_what_to_change():
    result = diagnose(Curves(STEPS, [1.0] * 100, [50, 100], [1.0, 0.9]))
    assert result.kind == "unknown" and "training.eval_every" in result.line and result.best_step is None


def test_reads_metrics_jsonl_and_plots_a_png(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [{"type": "train", "step": s, "loss": 3.0 - s / 100, "lr": 1e-3} for s in STEPS]
    records += [{"type": "eval", "step": s, "val_loss": 3.1 - s / 200, "val_perplexity": 1.0} for s in EVAL_STEPS]
    records.append({"type": "eval", "step": 105, "val_loss": float("nan")})  # a diverged evaluation is skipped
    path.write_text("".join(json.dumps(r) + "\n" for r in sorted(records, key=lambda r: r["step"])) + "\n")
    read = read_curves(path)
    assert read.train_steps == STEPS and read.eval_steps == EVAL_STEPS
    assert read.val_loss[0] == pytest.approx(3.05)
    png = plot_curves(read, diagnose(read), tmp_path / "loss.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    assert read_curves(tmp_path / "missing.jsonl") is None


def test_a_validation_loss_of_zero_does_not_divide_by_zero():
    result = diagnose(curves(falling(floor=0.0), lambda s: 0.0))
    assert result.kind == "converged"
