"""Exact resume across an epoch boundary after two successive resumes, on the tiny model through run(): stopped inside
epoch 1 and again inside epoch 2, the run trains the same examples at every step, at the same learning rate, for the
same number of steps, to the same weights as a run that was never stopped."""

import json

import pytest
import torch

from tunesmith import events as ev
from tunesmith.run import run
from tunesmith.train.loop import CancelToken, TrainingInterrupted, _Loop
from tunesmith.train.metrics_log import read_metrics

pytestmark = pytest.mark.slow  # four runs of the tiny model

# 10 examples in drawn batches of 2, two per step: windows of 2, 2 and 1 batches, so 3 steps per epoch, 9 in all.
STEPS_PER_EPOCH, EPOCHS = 3, 3
STOPS = (2, 5)  # inside epoch 1, then inside epoch 2


@pytest.fixture
def config(tiny_run_config, tmp_path):
    train = tmp_path / "distinct.jsonl"
    with train.open("w") as handle:
        for i in range(10):  # every example different, of different lengths (batches are grouped by length)
            messages = [{"role": "user", "content": f"Question {i}: how many eggs go in recipe {i}?"},
                        {"role": "assistant", "content": "Short answer: " + "two eggs, " * (i % 4 + 1)}]
            handle.write(json.dumps({"messages": messages}) + "\n")

    def make(name):
        return tiny_run_config(
            {"name": "lora", "r": 4, "alpha": 8, "dropout": 0.1},  # dropout: the random state must resume too
            data={"train": str(train), "test": None, "validation_split": 0.0},
            training={"max_steps": None, "epochs": EPOCHS, "batch_size": 2, "gradient_accumulation": 2,
                      "save_every": 4, "eval_every": 100, "log_every": 1, "lr_scheduler": "cosine",
                      "warmup_steps": 2},
            eval={"compare_base": False, "metrics": ["perplexity"]},
            output_dir=str(tmp_path / name),
        )

    return make


@pytest.fixture
def trained_indices(monkeypatch):
    """The example indices of every optimizer step, in order, for each run: {step: [[indices of a batch], ...]}."""
    record: dict[int, list[list[int]]] = {}
    original = _Loop._optimizer_step

    def recording(self, group, state):
        record[state.step + 1] = [list(indices) for indices in group]
        return original(self, group, state)

    monkeypatch.setattr(_Loop, "_optimizer_step", recording)
    return record


def stop_at(step, token):
    def on_event(event):
        if isinstance(event, ev.Step) and event.step == step:
            token.cancel()

    return on_event


def test_two_resumes_across_an_epoch_boundary_give_the_uninterrupted_run(config, trained_indices):
    from safetensors.torch import load_file

    straight = run(config("straight"))
    straight_indices = dict(trained_indices)
    trained_indices.clear()

    stopped = config("stopped")
    token = CancelToken()
    with pytest.raises(TrainingInterrupted, match=f"stopped at step {STOPS[0]}"):
        run(stopped, cancel=token, on_event=stop_at(STOPS[0], token))
    token = CancelToken()
    with pytest.raises(TrainingInterrupted, match=f"stopped at step {STOPS[1]}"):
        run(stopped, resume=True, cancel=token, on_event=stop_at(STOPS[1], token))
    resumed = run(stopped, resume=True)

    total = STEPS_PER_EPOCH * EPOCHS
    assert sorted(straight_indices) == sorted(trained_indices) == list(range(1, total + 1))
    assert trained_indices == straight_indices  # the same examples in the same batches at every step
    epochs = [sorted(i for step in range(1 + e * STEPS_PER_EPOCH, 1 + (e + 1) * STEPS_PER_EPOCH)
                     for batch in straight_indices[step] for i in batch) for e in range(EPOCHS)]
    assert epochs == [list(range(10))] * EPOCHS  # each epoch saw every example once
    assert straight_indices[1] != straight_indices[1 + STEPS_PER_EPOCH]  # and epochs are shuffled differently

    records = [read_metrics(folder.run_dir / "metrics.jsonl") for folder in (straight, resumed)]
    train = [[(r["step"], r["epoch"], r["lr"], r["loss"]) for r in rs if r["type"] == "train"] for rs in records]
    assert [s for s, *_ in train[1]] == list(range(1, total + 1))  # every step logged exactly once
    assert [(s, e, lr) for s, e, lr, _ in train[1]] == [(s, e, lr) for s, e, lr, _ in train[0]]
    assert [loss for *_, loss in train[1]] == pytest.approx([loss for *_, loss in train[0]], abs=1e-6)
    assert sorted({e for _, e, _, _ in train[1]}) == list(range(EPOCHS))

    a = load_file(straight.output / "adapter_model.safetensors")
    b = load_file(resumed.output / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=0, msg=name)
