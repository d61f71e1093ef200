"""A stop signal mid-run: the current step finishes, a checkpoint is written, --resume completes the run."""

import signal
import subprocess
import sys
import time

from tunesmith.config.load import save_config
from tunesmith.train.metrics_log import read_metrics


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

    resumed = subprocess.run([sys.executable, "-m", "tunesmith", "train", str(path), "--resume",
                              "--set", "training.max_steps=400"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    steps = [r["step"] for r in read_metrics(metrics) if r["type"] == "train"]
    assert steps == list(range(1, 401))  # every step exactly once across the stop and the resume
