"""DDP and DeepSpeed on CPU (gloo): two processes with the same global batch follow the one-process loss curve,
stop together, and run stages and refinement rounds (the sharded strategies' crash-and-resume runs are in
test_distributed_sharded.py)."""

import os
import subprocess
import sys

import pytest

from tests.integration.distributed_runs import LORA, torchrun, train
from tunesmith.cli.train import argv_without_nproc
from tunesmith.config.load import build_config, save_config
from tunesmith.train.checkpoint import complete_checkpoints
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


def test_deepspeed_without_the_package_is_refused_before_any_process_starts(tiny_run_config, tmp_path):
    config = tiny_run_config(distributed={"strategy": "deepspeed"})
    path = tmp_path / "deepspeed.yaml"
    save_config(config, path)
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "deepspeed.py").write_text("raise ImportError('hidden by the test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hide), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "tunesmith", "train", str(path), "--nproc", "2"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2
    assert result.stderr.count("distributed.strategy: deepspeed needs the deepspeed package: pip install deepspeed") == 1
    assert "Traceback" not in result.stderr


def test_a_deepspeed_checkpoint_resumes_only_with_its_number_of_processes(tmp_path):
    from tunesmith.errors import ConfigError
    from tunesmith.train.deepspeed_zero import ENGINE_DIR, TAG, load_engine_state

    written = tmp_path / "step-0000004" / ENGINE_DIR / TAG
    written.mkdir(parents=True)
    for rank in range(2):
        (written / f"bf16_zero_pp_rank_{rank}_mp_rank_00_optim_states.pt").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"written by 2 DeepSpeed processes; .* \(--nproc 2\), not 4"):
        load_engine_state(engine=None, folder=tmp_path / "step-0000004", world_size=4)


def test_a_checkpoint_resumes_only_under_the_strategy_that_wrote_it(tiny_run_config, tmp_path):
    import hashlib
    import json

    from tunesmith.errors import ConfigError
    from tunesmith.run import run

    config = tiny_run_config(training={"max_steps": 3, "save_every": 2},
                             eval={"compare_base": False, "metrics": ["perplexity"]})

    def crash(state):
        if state.step == 2:
            raise SystemExit(3)

    with pytest.raises(SystemExit):
        run(config, on_step_end=crash)
    checkpoint = complete_checkpoints(tmp_path / "run")[-1]
    written = {name: (checkpoint / name).read_bytes() for name in ("optimizer.json", "optimizer.safetensors")}

    def rewrite(name: str, content: bytes | None) -> None:
        """Write (None: delete) one file of the checkpoint as another strategy would have, manifest included."""
        manifest = json.loads((checkpoint / "manifest.json").read_text())
        if content is None:
            (checkpoint / name).unlink()
            del manifest["files"][name]
        else:
            (checkpoint / name).write_bytes(content)
            manifest["files"][name] = {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
        (checkpoint / "manifest.json").write_text(json.dumps(manifest))

    # What FSDP writes: the optimizer state keyed by parameter name.
    optimizer_tree = json.loads(written["optimizer.json"])
    names = iter(f"p{i}" for i in range(1000))
    for group in optimizer_tree["param_groups"]:
        group["params"] = [next(names) for _ in group["params"]]
    rewrite("optimizer.json", json.dumps(optimizer_tree).encode())
    with pytest.raises(ConfigError, match="written under distributed.strategy: fsdp; resume it with the same \\(this "
                                          "run uses one process or DDP\\)"):
        run(config, resume=True)
    for name in written:  # what DeepSpeed writes: its optimizer files in deepspeed/ instead
        rewrite(name, None)
    with pytest.raises(ConfigError, match="written under distributed.strategy: deepspeed"):
        run(config, resume=True)
    for name, content in written.items():
        rewrite(name, content)
    assert run(config, resume=True).output.is_dir()


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


SIGNAL_RANK_1_AT_STEP_3 = """
import os, signal, sys
from tunesmith.config.load import load_config
from tunesmith.run import run

def stop_one_rank(state):
    if state.step == 3 and os.environ["RANK"] == "1":
        os.kill(os.getpid(), signal.SIGTERM)

run(load_config(sys.argv[1]), on_step_end=stop_one_rank)
"""


def test_a_stop_signal_on_one_rank_stops_every_rank_after_a_checkpoint(tiny_run_config, tmp_path):
    config = tiny_run_config(LORA, training={"max_steps": 50, "save_every": 1000, "eval_every": 1000},
                             eval={"compare_base": False, "metrics": ["perplexity"]})
    path = tmp_path / "config.yaml"
    save_config(config, path)
    stopped = torchrun(tmp_path / "stop.py", SIGNAL_RANK_1_AT_STEP_3, path)
    assert stopped.returncode != 0
    assert "TrainingInterrupted" in stopped.stderr
    # The signal arrived after step 3's save decision: both ranks save step 4 together, then stop.
    assert [p.name for p in complete_checkpoints(tmp_path / "run")] == ["step-0000004"]
    assert [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [1, 2, 3, 4]


def test_stages_run_under_deepspeed_with_every_carry(tiny_run_config, tmp_path):
    # A second and third Accelerator in the same processes, rank 1 continuing rank 0's adapter, rank 0 alone merging.
    config = tiny_run_config(LORA, training={"max_steps": 2, "save_every": 100, "eval_every": 100},
                             distributed={"strategy": "deepspeed", "zero_stage": 2},
                             eval={"compare_base": False, "metrics": ["perplexity"]})
    raw = config.model_dump(mode="json")
    raw["stages"] = [{"name": "related"}, {"name": "target", "carry": "adapter"}, {"name": "polish", "carry": "merge"}]
    path = tmp_path / "stages.yaml"
    save_config(build_config(raw), path)
    result = train(path, nproc=2)
    assert result.stdout.count("DeepSpeed ZeRO-2: optimizer state and gradients partitioned over 2 processes") == 3
    assert "stage 2/3 target: starts from stage 1 (adapter)" in result.stdout
    assert "stage 3/3 polish: starts from stage 2 (merge)" in result.stdout
    assert result.stdout.count("stage 3/3") == 1  # rank 0 speaks for both
    assert (tmp_path / "run" / "stage-2-target" / "merged" / "config.json").is_file()
    assert (tmp_path / "run" / "report.md").is_file()


def test_refinement_rounds_on_two_processes_decide_on_rank_0s_scores(tiny_run_config, tmp_path):
    # perplexity on the test set is scored by rank 0 only; every rank must take the same decisions from it.
    config = tiny_run_config(LORA, training={"max_steps": 2, "save_every": 100, "eval_every": 100},
                             refine={"rounds": 2, "metric": "perplexity", "stop_when_no_gain": False},
                             eval={"compare_base": False, "metrics": ["perplexity"]})
    path = tmp_path / "refine.yaml"
    save_config(config, path)
    result = train(path, nproc=2)
    assert result.stdout.count("round 2: perplexity = ") == 1
    assert (tmp_path / "run" / "round-2" / "adapter").is_dir()
