"""The LoRA benchmark's per-step arithmetic: each step's seconds and tokens from the tools' cumulative logs, the
speed after step 1 and its fraction of the ceiling. No timings (benchmarks/results/ holds those)."""

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "_bench_lora_vs_trl", Path(__file__).resolve().parents[3] / "benchmarks" / "llm" / "lora_vs_trl.py")
bench = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # dataclasses look it up there
_spec.loader.exec_module(bench)


def test_steps_are_differences_of_the_cumulative_log():
    steps = bench.after_first_step([(30.0, 1000), (40.0, 2000), (52.0, 3200)])
    assert steps["step_seconds"] == pytest.approx([30.0, 10.0, 12.0])
    assert steps["step_tokens"] == [1000, 1000, 1200]
    assert steps["first_step_seconds"] == pytest.approx(30.0)


def test_steady_speed_leaves_step_one_out():
    steps = bench.after_first_step([(30.0, 1000), (40.0, 2000), (52.0, 3200)])
    assert steps["steady_tokens_per_s"] == pytest.approx(2200 / 22.0)  # not 3200 / 52


def test_a_one_step_run_has_no_steady_speed():
    steps = bench.after_first_step([(30.0, 1000)])
    assert steps["steady_tokens_per_s"] is None
    assert steps["first_step_seconds"] == pytest.approx(30.0)
    assert bench.after_first_step([])["first_step_seconds"] is None


def test_steady_fraction_is_over_the_same_ceiling():
    capability = {"ceiling_tokens_per_s": 200.0}
    fractions = bench.ceiling_fractions({"tokens_per_s": 50.0, "steady_tokens_per_s": 100.0}, capability)
    assert fractions["ceiling_fraction"] == pytest.approx(0.25)
    assert fractions["steady_ceiling_fraction"] == pytest.approx(0.5)
    assert bench.ceiling_fractions({"tokens_per_s": 50.0, "steady_tokens_per_s": None},
                                   capability)["steady_ceiling_fraction"] is None
