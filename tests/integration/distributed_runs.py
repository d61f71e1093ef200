"""What the distributed tests share: `tunesmith train --nproc` as a subprocess, a script on two forked ranks, and
the training losses a run logged."""

import os
import subprocess
import sys
from pathlib import Path

from tunesmith.train.metrics_log import read_metrics

LORA = {"name": "lora", "r": 4, "alpha": 8, "dropout": 0.0}


def train(path, nproc: int, resume: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tunesmith", "train", str(path), "--nproc", str(nproc)]
    result = subprocess.run(command + (["--resume"] if resume else []), capture_output=True, text=True,
                            timeout=300, env=env())
    # Finished, not only exit 0: the report is the run's last word.
    assert result.returncode == 0 and "report:" in result.stdout, result.stderr[-3000:]
    return result


# Two ranks forked from a process that has imported tunesmith (as `--nproc` starts them), each running a script.
LAUNCH_SCRIPT = """
import sys
from torch.distributed.run import run_script_path
from tunesmith.train.launch import launch

sys.exit(1 if launch(2, run_script_path, *sys.argv[1:]) else 0)
"""


def torchrun(script: Path, source: str, config: Path) -> subprocess.CompletedProcess:
    """`source` written to `script` and run on two ranks with the config's path as its argument."""
    script.write_text(source)
    return subprocess.run([sys.executable, "-c", LAUNCH_SCRIPT, str(script), str(config)], capture_output=True,
                          text=True, timeout=300, env=env())


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def train_losses(run_dir) -> list[float]:
    steps = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["type"] == "train"]
    assert [r["step"] for r in steps] == list(range(1, len(steps) + 1))
    return [r["loss"] for r in steps]
