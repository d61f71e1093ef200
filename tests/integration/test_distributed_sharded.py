"""FSDP2 and DeepSpeed ZeRO 1-3 on CPU (gloo): a two-process run that crashes and is resumed follows the
one-process run step by step, for full fine-tuning and LoRA. Its own module so that pytest-xdist can run it beside
the other distributed tests."""

import re
from pathlib import Path

import pytest
import torch

from tests.integration.distributed_runs import LORA, torchrun, train, train_losses
from tunesmith.config.load import save_config
from tunesmith.models.load import load_trained
from tunesmith.train.checkpoint import complete_checkpoints

CRASH_AT_STEP_5 = """
import sys
from tunesmith.config.load import load_config
from tunesmith.run import run

def crash(state):
    if state.step == 5:
        raise SystemExit(3)

run(load_config(sys.argv[1]), on_step_end=crash)
"""


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
            one = train(folder / f"{name}.yaml", nproc=1)
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
    crashed = torchrun(tmp_path / "crash.py", CRASH_AT_STEP_5, path)
    assert crashed.returncode != 0
    assert [p.name for p in complete_checkpoints(folder)] == ["step-0000004"]
    resumed = train(path, nproc=2, resume=True)
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
