"""batch_size: auto on the toy regression task: an out-of-memory step is retried in smaller micro-batches with the
same examples, loss and schedule; the cut survives resume; one example that does not fit ends the run clearly."""

import pytest
import torch

from tests.unit.train.test_task_seam import Crash, RegressionTask, Regressor, SquaredError, accelerator, config
from tunesmith import events as ev
from tunesmith.errors import TunesmithError
from tunesmith.train.checkpoint import complete_checkpoints
from tunesmith.train.loop import train
from tunesmith.train.micro_batch import cut

CPU_OOM = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 1073741824 bytes. Error code 12"


class LimitedLoss(SquaredError):
    """Runs out of memory, as the CPU allocator does, on a batch of more than `rows` rows from step `from_step` on."""

    def __init__(self, model, rows, from_step, steps, error):
        super().__init__(model)
        self.rows, self.from_step, self.steps, self.error = rows, from_step, steps, error
        self.too_large = 0  # forward passes refused

    def forward(self, batch, normaliser):
        if len(batch["y"]) > self.rows and len(self.steps) + 1 >= self.from_step:
            self.too_large += 1
            raise self.error
        return super().forward(batch, normaliser)


class LimitedTask(RegressionTask):
    """The regression task on a device with room for `rows` rows; records the rows each step trains on."""

    def __init__(self, rows=2, from_step=1, error=None):
        torch.manual_seed(0)
        super().__init__(Regressor())
        self.steps: list[list[int]] = []  # row indices per finished step (collated while training)
        self.pending: list[int] = []
        self.loss = LimitedLoss(self.model, rows, from_step, self.steps, error or RuntimeError(CPU_OOM))
        self.ids = {id(row): i for i, row in enumerate(self.train_set)}

    def loss_module(self):
        return self.loss

    def train_batches(self, cfg):
        sampler, collate = super().train_batches(cfg)

        def recording(rows):
            if torch.is_grad_enabled():
                self.pending += [self.ids[id(row)] for row in rows]
            return collate(rows)

        return sampler, recording

    def step_ended(self, state):
        self.steps.append(sorted(set(self.pending)))  # a retried micro-batch collates its rows again
        self.pending = []


def auto(**overrides):
    return config(**{"batch_size": "auto", "max_steps": 6, "eval_every": 100, "save_every": 3, **overrides})


def run(task, folder, cfg, **kwargs):
    seen = []
    result = train(task, cfg, folder, accelerator(), events=ev.EventStream([seen.append]),
                   on_step_end=kwargs.pop("on_step_end", task.step_ended), **kwargs)
    return result, seen


def test_cut_keeps_consecutive_examples_together():
    assert cut(list(range(8)), 2) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert cut(list(range(5)), 2) == [[0, 1, 2], [3, 4]]
    assert cut(list(range(3)), 4) == [[0], [1], [2]]


def test_an_out_of_memory_step_is_redone_in_smaller_micro_batches_with_the_same_step(tmp_path):
    reference = LimitedTask(rows=10**6)  # room for everything: 8 rows per micro-batch, 2 micro-batches per step
    straight, straight_events = run(reference, tmp_path / "a", auto())
    task = LimitedTask(rows=2, from_step=3)  # from step 3 on, only 2 rows fit
    result, seen = run(task, tmp_path / "b", auto())

    cuts = [e for e in seen if isinstance(e, ev.BatchSizeReduced)]
    assert [(e.step, e.micro_batch, e.gradient_accumulation) for e in cuts] == [(3, 4, 4), (3, 2, 8)]
    assert cuts[0].reason == "step 3 ran out of memory with micro-batches of 8"
    assert task.loss.too_large == 2 and result.state.micro_batches == 4
    assert task.steps == reference.steps  # the same rows in every step
    losses = lambda events: [(e.step, e.loss, e.learning_rate) for e in events if isinstance(e, ev.Step)]  # noqa: E731
    assert [s for s, _, _ in losses(seen)] == list(range(1, 7))
    for (_, a, lr_a), (_, b, lr_b) in zip(losses(straight_events), losses(seen)):
        assert a == pytest.approx(b, rel=1e-6) and lr_a == lr_b
    for name, value in reference.model.state_dict().items():
        torch.testing.assert_close(task.model.state_dict()[name], value, atol=1e-6, rtol=0, msg=name)


def test_a_cuda_out_of_memory_error_is_handled_the_same_way(tmp_path):
    task = LimitedTask(rows=4, error=torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB."))
    result, seen = run(task, tmp_path, auto(max_steps=2))
    assert [(e.step, e.micro_batch) for e in seen if isinstance(e, ev.BatchSizeReduced)] == [(1, 4)]
    assert result.state.step == 2


def test_a_resumed_run_starts_at_the_reduced_micro_batch_with_the_same_rows(tmp_path):
    straight = LimitedTask(rows=2, from_step=2)
    run(straight, tmp_path / "a", auto())

    crashing = LimitedTask(rows=2, from_step=2)

    def crash_after_four(state):
        crashing.step_ended(state)
        if state.step == 4:
            raise Crash

    with pytest.raises(Crash):
        run(crashing, tmp_path / "b", auto(), on_step_end=crash_after_four)
    assert complete_checkpoints(tmp_path / "b")[-1].name == "step-0000003"
    resumed = LimitedTask(rows=2, from_step=1)  # a new process on the same device: nothing larger fits
    result, seen = run(resumed, tmp_path / "b", auto(), resume=True)

    assert resumed.loss.too_large == 0  # it never tried the size that had failed
    assert [(e.step, e.micro_batch, e.reason) for e in seen if isinstance(e, ev.BatchSizeReduced)] == [
        (4, 2, "resumed as cut before: an earlier step ran out of memory")]
    assert crashing.steps[:3] + resumed.steps == straight.steps
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, atol=1e-6, rtol=0, msg=name)


def test_one_example_that_does_not_fit_ends_the_run_with_what_was_tried(tmp_path):
    task = LimitedTask(rows=0)
    with pytest.raises(TunesmithError) as info:
        train(task, auto(), tmp_path, accelerator(), memory_plan="~0.01 GiB (weights 0.00 + gradients 0.00)")
    message = str(info.value)
    assert message.startswith("training.batch_size: auto: step 1 runs out of memory even with one example per "
                              "micro-batch (tried micro-batch x accumulation 8 x 2, 4 x 4, 2 x 8, 1 x 16; last error: "
                              "DefaultCPUAllocator: can't allocate memory")
    assert "the machine has " in message and "memory plan: ~0.01 GiB (weights 0.00 + gradients 0.00)" in message
    assert "\n" not in message
    assert task.loss.too_large == 4


def test_a_fixed_batch_size_that_runs_out_of_memory_says_to_use_auto(tmp_path):
    with pytest.raises(TunesmithError, match=r"step 1 ran out of memory with micro-batches of 4 examples .*set "
                                             r"training.batch_size: auto"):
        train(LimitedTask(rows=2), config(batch_size=4), tmp_path, accelerator())


def test_other_errors_are_not_taken_for_out_of_memory(tmp_path):
    task = LimitedTask(rows=2, error=RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        train(task, auto(), tmp_path, accelerator())
    assert task.loss.too_large == 1
