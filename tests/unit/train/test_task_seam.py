"""The loop trains any task: a toy regression task (its own batches and loss, no tokens) goes through the same loop,
with checkpoints, an exact resume, per-group learning rates and its own throughput unit."""

import pytest
import torch
from torch import nn

from tunesmith import events as ev
from tunesmith.config.training import TrainingConfig
from tunesmith.train.batching import EpochBatchSampler
from tunesmith.train.checkpoint import complete_checkpoints
from tunesmith.train.distributed import reset_accelerate_state
from tunesmith.train.loop import CancelToken, TrainingInterrupted, train
from tunesmith.train.task import BatchCounts, Task


class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


class SquaredError(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch, normaliser):
        error = (self.model(batch["x"]).squeeze(-1) - batch["y"]) ** 2
        return (error * batch["weight"]).sum() / normaliser


class RegressionTask(Task):
    unit = "rows"

    def __init__(self, model, n=40, seed=0):
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(n, 4, generator=generator)
        y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
        self.model = model
        self.train_set = [{"x": x[i], "y": y[i]} for i in range(n - 8)]
        self.val_set = [{"x": x[i], "y": y[i]} for i in range(n - 8, n)]

    def loss_module(self):
        return SquaredError(self.model)

    def train_batches(self, cfg):
        return EpochBatchSampler(len(self.train_set), cfg.batch_size, cfg.seed), self.eval_collator()

    def eval_collator(self):
        return lambda rows: {"x": torch.stack([r["x"] for r in rows]), "y": torch.stack([r["y"] for r in rows]),
                             "weight": torch.ones(len(rows))}

    def counts(self, batch):
        return BatchCounts(len(batch["y"]), len(batch["y"]))

    def blank(self, batch):
        batch["weight"].zero_()
        return batch

    def validation_metrics(self, mean_loss):
        return {"val_rmse": mean_loss**0.5}

    def param_groups(self, weight_decay, learning_rate):
        # The head trains at a tenth of the rate, as DreamBooth trains its text encoder.
        return [{"params": list(self.model.body.parameters())},
                {"params": list(self.model.head.parameters()), "lr": learning_rate / 10}]


def accelerator():
    from accelerate import Accelerator

    reset_accelerate_state()
    return Accelerator(cpu=True)


def config(**overrides):
    values = {"max_steps": 10, "batch_size": 4, "gradient_accumulation": 2, "learning_rate": 0.1, "seed": 3,
              "precision": "fp32", "log_every": 1, "eval_every": 4, "save_every": 3, "lr_scheduler": "constant"}
    return TrainingConfig(**{**values, **overrides})


def fresh_task():
    torch.manual_seed(0)
    return RegressionTask(Regressor())


class Crash(Exception):
    pass


def test_a_non_language_task_trains_checkpoints_and_resumes_exactly(tmp_path):
    straight = fresh_task()
    with torch.no_grad():
        before = sum(float(SquaredError(straight.model)(straight.eval_collator()(straight.val_set), 1))
                     for _ in [0]) / len(straight.val_set)
    seen = []
    result = train(straight, config(), tmp_path / "a", accelerator(), events=ev.EventStream([seen.append]))
    steps = [e for e in seen if isinstance(e, ev.Step)]
    assert [e.step for e in steps] == list(range(1, 11))
    assert result.val_loss < before * 0.75, (before, result.val_loss)  # it learns
    assert {e.unit for e in steps} == {"rows"} and steps[-1].seen == 10 * 8
    evaluations = [e for e in seen if isinstance(e, ev.Evaluation)]
    assert [e.step for e in evaluations] == [4, 8, 10]
    assert evaluations[-1].metrics["val_rmse"] == pytest.approx(result.val_loss**0.5)

    def crash_after_five(state):
        if state.step == 5:
            raise Crash

    interrupted = fresh_task()
    with pytest.raises(Crash):
        train(interrupted, config(), tmp_path / "b", accelerator(), on_step_end=crash_after_five)
    assert complete_checkpoints(tmp_path / "b")[-1].name == "step-0000003"
    resumed = fresh_task()  # a new process would start from fresh weights too
    train(resumed, config(), tmp_path / "b", accelerator(), resume=True)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)


class FrozenHeadTask(RegressionTask):
    def param_groups(self, weight_decay, learning_rate):
        return [{"params": list(self.model.body.parameters())},
                {"params": list(self.model.head.parameters()), "lr": 0.0}]


def test_each_parameter_group_keeps_its_own_learning_rate(tmp_path):
    torch.manual_seed(0)
    task = FrozenHeadTask(Regressor())
    before = {name: p.detach().clone() for name, p in task.model.named_parameters()}
    train(task, config(max_steps=4, lr_scheduler="cosine", warmup_steps=1), tmp_path, accelerator())
    changed = {name for name, p in task.model.named_parameters() if not torch.equal(before[name], p)}
    assert changed == {"body.weight", "body.bias"}


def test_a_cancel_token_stops_after_a_checkpoint_and_the_run_resumes(tmp_path):
    token = CancelToken()
    seen = []

    def cancel_at_four(event):
        seen.append(event)
        if isinstance(event, ev.Step) and event.step == 4:
            token.cancel()

    with pytest.raises(TrainingInterrupted, match="stopped at step 4; checkpoint saved"):
        train(fresh_task(), config(save_every=100), tmp_path, accelerator(), events=ev.EventStream([cancel_at_four]),
              cancel=token)
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step-0000004"]
    assert [e.type for e in seen][-2:] == ["checkpoint", "run_interrupted"]
    resumed_events = []
    result = train(fresh_task(), config(save_every=100), tmp_path, accelerator(), resume=True,
                   events=ev.EventStream([resumed_events.append]))
    assert result.state.step == 10
    assert [e.step for e in resumed_events if isinstance(e, ev.Step)] == list(range(5, 11))
    assert resumed_events[0] == ev.TrainingStarted(total_steps=10, step=4, unit="rows", resumed=True,
                                                   time=resumed_events[0].time)


def test_checkpoints_carry_the_files_the_caller_names(tmp_path):
    train(fresh_task(), config(max_steps=3), tmp_path, accelerator(), checkpoint_files={"config.yaml": "a: 1\n"})
    assert (complete_checkpoints(tmp_path)[-1] / "config.yaml").read_text() == "a: 1\n"


class PoisonedTask(RegressionTask):
    """Rows whose target is nan: a batch holding one has a nan loss and nan gradients."""

    def __init__(self, model, poisoned):
        super().__init__(model)
        for i in poisoned:
            self.train_set[i] = {"x": self.train_set[i]["x"], "y": torch.tensor(float("nan"))}


def test_a_non_finite_step_is_dropped_and_named(tmp_path):
    torch.manual_seed(0)
    clean = RegressionTask(Regressor())
    sampler, _ = clean.train_batches(config())
    sampler.set_epoch(0)
    first_window = [i for batch in list(sampler)[:2] for i in batch]  # gradient_accumulation 2: step 1
    torch.manual_seed(0)
    task = PoisonedTask(Regressor(), poisoned=first_window[:1])
    before = {name: p.detach().clone() for name, p in task.model.named_parameters()}
    seen = []
    snapshot = {}

    def after_step(state):
        if state.step == 1:
            snapshot.update({name: p.detach().clone() for name, p in task.model.named_parameters()})

    result = train(task, config(max_steps=4, eval_every=100, save_every=100), tmp_path, accelerator(),
                   events=ev.EventStream([seen.append]), on_step_end=after_step)
    skipped = [e for e in seen if isinstance(e, ev.StepSkipped)]
    assert [(e.step, e.bad_steps) for e in skipped] == [(1, 1)]
    assert skipped[0].message.startswith("step 1: the loss or a gradient is not finite (nan/inf); the step was not applied")
    assert all(torch.equal(before[name], snapshot[name]) for name in before)  # step 1 changed nothing
    assert result.state.step == 4 and all(torch.isfinite(p).all() for p in task.model.parameters())
    # A logged window of only dropped steps trained on nothing: no step line with a made-up loss of 0.
    assert [e.step for e in seen if isinstance(e, ev.Step)] == [2, 3, 4]


def test_too_many_non_finite_steps_stop_the_run_without_poisoned_weights(tmp_path):
    from tunesmith.errors import TunesmithError

    torch.manual_seed(0)
    task = PoisonedTask(Regressor(), poisoned=range(32))  # every row
    with pytest.raises(TunesmithError, match="training stopped at step 3: 3 steps had a non-finite loss or gradient"):
        train(task, config(max_steps=10, save_every=2), tmp_path, accelerator())
    from safetensors.torch import load_file

    saved = load_file(complete_checkpoints(tmp_path)[-1] / "trainable.safetensors")
    assert all(torch.isfinite(t).all() for t in saved.values())
