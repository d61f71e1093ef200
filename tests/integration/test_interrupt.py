"""A stop signal mid-run: the current step finishes, a checkpoint is written, the run folder is marked interrupted
until --resume completes the run.

SIGTERM goes to the real CLI (400 steps, so it lands mid-run); Ctrl-C (SIGINT) is sent in-process at the end of
step 2 of a 6-step run, which tests the same handler and marker at a fraction of the cost."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tunesmith.config.load import save_config
from tunesmith.run import INTERRUPTED, run
from tunesmith.train.checkpoint import complete_checkpoints
from tunesmith.train.loop import TrainingInterrupted
from tunesmith.train.metrics_log import read_metrics


def assert_marked_interrupted(run_dir, checkpoint: str) -> None:
    """interrupted.json names the checkpointed step and says how to continue."""
    marker = json.loads((run_dir / INTERRUPTED).read_text())
    assert f"step-{marker['step']:07d}" == checkpoint
    assert marker["message"].startswith(f"stopped at step {marker['step']}; checkpoint saved"), marker


def test_sigterm_checkpoints_then_resume_finishes(tiny_run_config, tmp_path):
    config = tiny_run_config(training={"max_steps": 400, "save_every": 1000, "eval_every": 1000},
                             eval={"compare_base": False, "metrics": ["perplexity"]})
    path = tmp_path / "long.yaml"
    save_config(config, path)
    process = subprocess.Popen([sys.executable, "-m", "tunesmith", "train", str(path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.is_file() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2, stderr[-2000:]
    assert "checkpoint saved. Continue with: tunesmith train CONFIG --resume" in stderr
    stopped = [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()]
    assert len(stopped) == 1 and stopped[0].startswith("step-")
    assert_marked_interrupted(tmp_path / "run", stopped[0])

    resumed = subprocess.run([sys.executable, "-m", "tunesmith", "train", str(path), "--resume",
                              "--set", "training.max_steps=400"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    steps = [r["step"] for r in read_metrics(metrics) if r["type"] == "train"]
    assert steps == list(range(1, 401))  # every step exactly once across the stop and the resume
    assert not (tmp_path / "run" / INTERRUPTED).exists()


def test_ctrl_c_checkpoints_marks_the_run_and_resume_finishes(tiny_run_config, tmp_path):
    config = tiny_run_config(training={"max_steps": 6, "save_every": 1000, "eval_every": 1000},
                             eval={"compare_base": False, "metrics": ["perplexity"]})
    run_dir = tmp_path / "run"

    def ctrl_c_after_step_2(state):
        if state.step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # what a terminal sends on Ctrl-C

    # Step 2 has passed its stop check when its end callback runs: step 3 is the one under way, which finishes.
    with pytest.raises(TrainingInterrupted, match="stopped at step 3; checkpoint saved"):
        run(config, on_step_end=ctrl_c_after_step_2)
    assert [p.name for p in complete_checkpoints(run_dir)] == ["step-0000003"]
    assert_marked_interrupted(run_dir, "step-0000003")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the loop gave Ctrl-C back

    run(config, resume=True)
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl") if r["type"] == "train"] == list(range(1, 7))
    assert not (run_dir / INTERRUPTED).exists()
