"""`training.optimizer`: fused AdamW by default, bitsandbytes' 8-bit AdamW on request, resumed exactly."""

import pytest
import torch
from torch import nn

from tunesmith.config.load import build_config
from tunesmith.errors import ConfigError
from tunesmith.methods import memory
from tunesmith.train.checkpoint import complete_checkpoints
from tunesmith.train.loop import train
from tunesmith.train.optimizer import STATE_BYTES, make_optimizer

from tests.unit.train.test_task_seam import Crash, RegressionTask, accelerator, config


class WideRegressor(nn.Module):
    """Wide enough (8,192 weights) that bitsandbytes keeps its moments in 8 bits (it keeps tensors under 4,096 in 32)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 2048)
        self.head = nn.Linear(2048, 1)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def wide_task():
    torch.manual_seed(0)
    return RegressionTask(WideRegressor())


def test_adamw_is_fused_on_the_cpu():
    weight = nn.Parameter(torch.zeros(3))
    optimizer = make_optimizer("adamw", [{"params": [weight]}], 0.1, strategy="ddp")
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["fused"] is True


def test_eight_bit_adamw_keeps_its_moments_in_a_byte_and_resumes_exactly(tmp_path):
    cfg = config(optimizer="adamw_8bit", learning_rate=1e-2)
    straight = wide_task()
    before = _val_loss(straight)
    result = train(straight, cfg, tmp_path / "a", accelerator())
    assert result.val_loss < before * 0.75, (before, result.val_loss)  # it learns
    state = _optimizer_state(tmp_path / "a")
    # The wide weight's two moments are one byte a value; bitsandbytes keeps the small tensors' in fp32.
    assert sorted(t.numel() for t in state.values() if t.dtype == torch.uint8) == [8192, 8192]
    state_bytes = sum(t.numel() * t.element_size() for t in state.values())
    trained = sum(p.numel() for p in straight.model.parameters())
    assert state_bytes < 0.55 * trained * STATE_BYTES["adamw"], (state_bytes, trained)

    def crash_after_five(state):
        if state.step == 5:
            raise Crash

    with pytest.raises(Crash):
        train(wide_task(), cfg, tmp_path / "b", accelerator(), on_step_end=crash_after_five)
    resumed = wide_task()
    train(resumed, cfg, tmp_path / "b", accelerator(), resume=True)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)


def test_eight_bit_adamw_trains_like_adamw(tmp_path):
    losses = {}
    for name in STATE_BYTES:
        losses[name] = train(wide_task(), config(optimizer=name, learning_rate=1e-2, max_steps=20), tmp_path / name,
                             accelerator()).val_loss
    assert losses["adamw_8bit"] == pytest.approx(losses["adamw"], rel=0.05), losses


@pytest.mark.parametrize("strategy", ["deepspeed", "fsdp"])
def test_eight_bit_adamw_is_refused_where_the_strategy_keeps_the_optimizer_state(strategy):
    with pytest.raises(ConfigError) as error:
        make_optimizer("adamw_8bit", [{"params": [nn.Parameter(torch.zeros(3))]}], 0.1, strategy=strategy)
    assert str(error.value) == (
        f"training.optimizer: adamw_8bit cannot run under distributed.strategy: {strategy} ({strategy} keeps the "
        "optimizer state itself); use training.optimizer: adamw")


def test_an_unknown_optimizer_names_the_key_and_the_choices(tmp_path):
    with pytest.raises(ConfigError) as error:
        build_config({"model": "tiny", "data": {"train": "x.jsonl"}, "method": {"name": "lora"},
                      "training": {"optimizer": "sgd"}})
    assert "training.optimizer" in str(error.value) and "'adamw' or 'adamw_8bit'" in str(error.value)


def test_the_memory_plan_counts_the_optimizers_state():
    model = WideRegressor()
    trained = sum(p.numel() for p in model.parameters())
    assert memory.estimate(model).optimizer == trained * 8
    assert memory.estimate(model, STATE_BYTES["adamw_8bit"]).optimizer == trained * 2


def _val_loss(task):
    with torch.no_grad():
        batch = task.eval_collator()(task.val_set)
        return float(((task.model(batch["x"]).squeeze(-1) - batch["y"]) ** 2).mean())


def _optimizer_state(run_dir):
    from safetensors.torch import load_file

    folder = complete_checkpoints(run_dir)[-1]
    files = sorted(folder.glob("optimizer*.safetensors"))
    assert files, sorted(p.name for p in folder.iterdir())
    return {k: v for f in files for k, v in load_file(f).items()}
