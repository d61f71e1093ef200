"""DDP, FSDP2 and DeepSpeed ZeRO on CPU (gloo): two processes with the same global batch follow the one-process
loss curve."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tunesmith.cli.train import argv_without_nproc
from tunesmith.config.load import build_config, save_config
from tunesmith.models.load import load_trained
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


CRASH_AT_STEP_5 = """
import sys
from tunesmith.config.load import load_config
from tunesmith.run import run

def crash(state):
    if state.step == 5:
        raise SystemExit(3)

run(load_config(sys.argv[1]), on_step_end=crash)
"""


LORA = {"name": "lora", "r": 4, "alpha": 8, "dropout": 0.0}
SHARDED = {  # strategy, method, the line that proves the sharding, the share of the weights rank 0 must hold
    "fsdp-lora": ({"strategy": "fsdp"}, LORA, r"FSDP2: 3 sharded units; rank 0 holds ([\d.]+)% of", (45, 55)),
    "fsdp-full": ({"strategy": "fsdp"}, {"name": "full"}, r"FSDP2: 3 sharded units; rank 0 holds ([\d.]+)% of",
                  (45, 55)),
    "zero1-lora": ({"strategy": "deepspeed", "zero_stage": 1}, LORA,
                   r"DeepSpeed ZeRO-1: optimizer state partitioned over 2 processes; rank 0 holds ([\d.]+)%", (100, 100)),
    "zero2-full": ({"strategy": "deepspeed", "zero_stage": 2}, {"name": "full"},
                   r"DeepSpeed ZeRO-2: optimizer state and gradients partitioned .* rank 0 holds ([\d.]+)%", (100, 100)),
    "zero3-lora": ({"strategy": "deepspeed", "zero_stage": 3}, LORA,
                   r"DeepSpeed ZeRO-3: optimizer state, gradients and weights partitioned .* rank 0 holds ([\d.]+)%",
                   (45, 55)),
}


@pytest.fixture(scope="module")
def one_process_runs(tmp_path_factory):
    """(method name, config for an output folder) -> that method's one-process run, trained once a module: every
    strategy of the method is compared with it."""
    folder, runs = tmp_path_factory.mktemp("one-process"), {}

    def get(name: str, make_config) -> Path:
        if name not in runs:
            save_config(make_config(str(folder / name)), folder / f"{name}.yaml")
            one = _train(folder / f"{name}.yaml", nproc=1)
            assert "sharded units" not in one.stdout and "DeepSpeed" not in one.stdout
            runs[name] = folder / name
        return runs[name]

    return get


@pytest.mark.parametrize("name", list(SHARDED))
def test_sharded_strategies_on_cpu_match_one_process_and_resume(tiny_run_config, tmp_path, one_process_runs, name):
    """A sharded run that crashes after step 5 and is resumed from its step-4 checkpoint follows the one-process
    run: the same loss at every step and, from what rank 0 gathered and saved, the same model."""
    distributed, method, summary, held_range = SHARDED[name]
    # Gradient clipping (max_grad_norm 1.0) and accumulation on; a checkpoint at step 4 and 8.
    training = {"max_steps": 10, "batch_size": 4, "gradient_accumulation": 2, "save_every": 4, "eval_every": 100,
                "log_every": 1}
    quiet_eval = {"compare_base": False, "metrics": ["perplexity"]}
    path, folder = tmp_path / "sharded.yaml", tmp_path / "sharded"
    save_config(tiny_run_config(method, output_dir=str(folder), training=training, distributed=distributed,
                                eval=quiet_eval), path)
    one = one_process_runs(method["name"], lambda out: tiny_run_config(method, output_dir=out, training=training,
                                                                       eval=quiet_eval))
    crashed = _torchrun(tmp_path / "crash.py", CRASH_AT_STEP_5, path)
    assert crashed.returncode != 0
    assert [p.name for p in complete_checkpoints(folder)] == ["step-0000004"]
    resumed = _train(path, nproc=2, resume=True)
    # The strategy really runs (accelerate falls back to plain data parallelism quietly), holding this much.
    held = re.search(summary, resumed.stdout)
    assert held, resumed.stdout[-3000:]
    assert held_range[0] <= float(held[1]) <= held_range[1]

    losses = {"one": train_losses(one), "sharded": train_losses(folder)}  # steps 1-4 before the crash, 5-10 after
    assert len(losses["one"]) == len(losses["sharded"]) == 10
    assert losses["sharded"] == pytest.approx(losses["one"], abs=1e-4)
    assert losses["sharded"][-1] < losses["sharded"][0]
    ids = torch.tensor([[1, 42, 7, 99, 512, 3]])
    with torch.no_grad():
        logits = {run: load_trained(run_dir)[0](input_ids=ids).logits for run, run_dir in (("one", one),
                                                                                          ("sharded", folder))}
    torch.testing.assert_close(logits["sharded"], logits["one"], atol=1e-4, rtol=0)


def _train(path, nproc: int, resume: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tunesmith", "train", str(path), "--nproc", str(nproc)]
    result = subprocess.run(command + (["--resume"] if resume else []), capture_output=True, text=True,
                            timeout=300, env=_env())
    # `--nproc` runs still exit 0 when a worker fails (the launcher's exit code is dropped): check it finished.
    assert result.returncode == 0 and "report:" in result.stdout, result.stderr[-3000:]
    return result


# Two ranks forked from a process that has imported tunesmith (as `--nproc` starts them), each running a script.
LAUNCH_SCRIPT = """
import sys
from torch.distributed.run import run_script_path
from tunesmith.train.launch import launch

sys.exit(1 if launch(2, run_script_path, *sys.argv[1:]) else 0)
"""


def _torchrun(script: Path, source: str, config: Path) -> subprocess.CompletedProcess:
    """`source` written to `script` and run on two ranks with the config's path as its argument."""
    script.write_text(source)
    return subprocess.run([sys.executable, "-c", LAUNCH_SCRIPT, str(script), str(config)], capture_output=True,
                          text=True, timeout=300, env=_env())


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def train_losses(run_dir) -> list[float]:
    steps = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["type"] == "train"]
    assert [r["step"] for r in steps] == list(range(1, len(steps) + 1))
    return [r["loss"] for r in steps]


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
    stopped = _torchrun(tmp_path / "stop.py", SIGNAL_RANK_1_AT_STEP_3, path)
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
    result = _train(path, nproc=2)
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
    result = _train(path, nproc=2)
    assert result.stdout.count("round 2: perplexity = ") == 1
    assert (tmp_path / "run" / "round-2" / "adapter").is_dir()
