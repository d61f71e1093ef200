"""Multi-stage runs start from the previous stage's weights; refinement stops when a round stops helping."""

import json

import pytest
import torch
from safetensors.torch import load_file

from tunesmith.config.load import build_config
from tunesmith.config.schema import RefineConfig
from tunesmith.run import run as run_config
from tunesmith.pipelines.refine import best_round, should_stop

QUICK_EVAL = {"compare_base": False, "metrics": ["perplexity"]}


def staged(tiny_run_config, method, second_training, carry="auto"):
    config = tiny_run_config(method, eval=QUICK_EVAL)
    raw = config.model_dump(mode="json")
    raw["stages"] = [
        {"name": "related", "training": {"max_steps": 4}},
        {"name": "target", "training": second_training, "carry": carry},
    ]
    return build_config(raw)


def test_adapter_stage_two_starts_from_stage_one(tiny_run_config):
    # A vanishing learning rate in stage 2 leaves its adapter where it started: stage 1's result.
    config = staged(tiny_run_config, {"name": "lora", "r": 4, "alpha": 8, "dropout": 0.0},
                    {"max_steps": 2, "learning_rate": 1e-12})
    summary = run_config(config)
    root = summary.run_dir
    first = load_file(root / "stage-1-related" / "adapter" / "adapter_model.safetensors")
    second = load_file(root / "stage-2-target" / "adapter" / "adapter_model.safetensors")
    assert any(t.abs().max() > 0 for name, t in first.items() if "lora_B" in name)  # stage 1 really trained
    for name in first:
        torch.testing.assert_close(first[name], second[name], atol=1e-7, rtol=0)
    report = json.loads((root / "report.json").read_text())
    assert {"after related", "tuned"} <= set(report)


def test_full_stage_two_starts_from_stage_one_weights(tiny_run_config):
    config = staged(tiny_run_config, {"name": "full"}, {"max_steps": 1, "learning_rate": 1e-12})
    summary = run_config(config)
    first = load_file(summary.run_dir / "stage-1-related" / "model" / "model.safetensors")
    second = load_file(summary.run_dir / "stage-2-target" / "model" / "model.safetensors")
    for name in first:
        torch.testing.assert_close(first[name], second[name], atol=1e-7, rtol=0)


def test_a_typo_in_a_later_stage_fails_before_training(tiny_run_config, tmp_path):
    from tunesmith.errors import ConfigError

    config = tiny_run_config(eval=QUICK_EVAL)
    raw = config.model_dump(mode="json")
    raw["stages"] = [{"name": "a"}, {"name": "b", "training": {"epoch": 2}}]
    with pytest.raises(ConfigError, match=r"training.epoch: unknown key; did you mean 'training.epochs'"):
        run_config(build_config(raw))
    assert not (tmp_path / "run" / "stage-1-a").exists()


@pytest.mark.parametrize(
    "history, stop",
    [([2.0], False), ([2.0, 1.5], False), ([2.0, 1.5, 1.6], True), ([2.0, 1.5, 1.5], True), ([2.0, 1.9, 1.8], False)],
)
def test_refinement_stops_when_a_round_stops_improving(history, stop):
    assert should_stop(history, RefineConfig(metric="val_loss")) is stop


def test_refinement_higher_is_better_metric_and_min_gain():
    refine = RefineConfig(metric="rouge_l", min_gain=0.5)
    assert should_stop([10.0, 12.0], refine) is False
    assert should_stop([10.0, 12.0, 12.3], refine) is True
    assert best_round([10.0, 12.0, 11.0], "rouge_l") == 1
    assert best_round([3.0, 2.0, 2.5], "val_loss") == 1


def test_refinement_rounds_continue_and_keep_the_best(tiny_run_config):
    config = tiny_run_config(eval=QUICK_EVAL, training={"max_steps": 3})
    raw = config.model_dump(mode="json")
    raw["refine"] = {"rounds": 3, "lr_decay": 0.5, "stop_when_no_gain": True, "metric": "val_loss"}
    summary = run_config(build_config(raw))
    report = json.loads((summary.run_dir / "report.json").read_text())
    rounds = report["meta"]["rounds_run"]
    assert 2 <= rounds <= 3
    lrs = [json.loads((summary.run_dir / f"round-{i}" / "metrics.jsonl").read_text().splitlines()[0])["lr"]
           for i in range(1, rounds + 1)]
    assert lrs[1] == pytest.approx(lrs[0] * 0.5, rel=1e-6)
    assert summary.output == summary.run_dir / f"round-{report['meta']['best_round']}" / "adapter"
