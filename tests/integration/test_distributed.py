"""DDP on CPU (gloo): two processes with the same global batch follow the single-process loss curve."""

import subprocess
import sys

import pytest

from tunesmith.cli.train import argv_without_nproc
from tunesmith.config.load import save_config
from tunesmith.train.metrics_log import read_metrics


def test_argv_without_nproc():
    assert argv_without_nproc(["train", "c.yaml", "--nproc", "2", "--resume"]) == ["train", "c.yaml", "--resume"]
    assert argv_without_nproc(["train", "c.yaml", "--nproc=2"]) == ["train", "c.yaml"]


def test_two_processes_match_one(tiny_run_config, tmp_path):
    # No dropout: each rank draws its own random numbers, which a single process would draw differently.
    common = dict(training={"max_steps": 10, "batch_size": 4, "save_every": 100, "eval_every": 100, "log_every": 1},
                  eval={"compare_base": False, "metrics": ["perplexity"]})
    method = {"name": "lora", "r": 4, "alpha": 8, "dropout": 0.0}
    losses = {}
    for nproc in (1, 2):
        config = tiny_run_config(method, output_dir=str(tmp_path / f"run{nproc}"), **common)
        path = tmp_path / f"config{nproc}.yaml"
        save_config(config, path)
        result = subprocess.run(
            [sys.executable, "-m", "tunesmith", "train", str(path), "--nproc", str(nproc)],
            capture_output=True, text=True, timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        losses[nproc] = [r["loss"] for r in read_metrics(tmp_path / f"run{nproc}" / "metrics.jsonl") if r["type"] == "train"]
    assert len(losses[1]) == len(losses[2]) == 10
    assert losses[2] == pytest.approx(losses[1], abs=1e-4)
    # only rank 0 wrote: one line per step, not two
    assert len(read_metrics(tmp_path / "run2" / "metrics.jsonl")) == 10 + 1  # + the final evaluation


def test_fsdp_on_cpu_is_refused_before_any_process_starts(tiny_run_config, tmp_path):
    config = tiny_run_config(distributed={"strategy": "fsdp"})
    path = tmp_path / "fsdp.yaml"
    save_config(config, path)
    result = subprocess.run([sys.executable, "-m", "tunesmith", "train", str(path), "--nproc", "2"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("distributed.strategy: fsdp needs CUDA GPUs; use strategy: ddp on CPU") == 1



def test_a_batch_smaller_than_the_world_still_trains_every_rank(tiny_run_config, tmp_path):
    # batch_size 3 on 2 processes: 22 train examples leave a last batch of 1, so one rank gets no example.
    config = tiny_run_config({"name": "lora", "r": 4, "alpha": 8, "dropout": 0.0}, output_dir=str(tmp_path / "odd"),
                             training={"epochs": 1, "max_steps": None, "batch_size": 3, "save_every": 100,
                                       "eval_every": 100, "log_every": 1},
                             eval={"compare_base": False, "metrics": ["perplexity"]})
    path = tmp_path / "odd.yaml"
    save_config(config, path)
    result = subprocess.run([sys.executable, "-m", "tunesmith", "train", str(path), "--nproc", "2"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    steps = [r for r in read_metrics(tmp_path / "odd" / "metrics.jsonl") if r["type"] == "train"]
    assert len(steps) == 8 and all(r["loss"] == r["loss"] for r in steps)  # 22 examples / 3 -> 8 steps, no NaN
    assert sum(r["tokens_per_s"] > 0 for r in steps) == 8
