"""The saved-activations benchmark's counter: the bytes it charges to modules add up to what autograd keeps (the
product's own measurement, tunesmith.train.saved_activations), parameters left out, each module's share where it
was saved, and only the first micro-batch after start() is counted."""

import importlib.util
import sys
from pathlib import Path

import torch
from torch import nn

from tunesmith.train.saved_activations import saved_bytes

_spec = importlib.util.spec_from_file_location(
    "_bench_saved_activations", Path(__file__).resolve().parents[3] / "benchmarks" / "llm" / "saved_activations.py")
bench = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.up, self.act, self.down = nn.Linear(8, 16), nn.SiLU(), nn.Linear(16, 8)

    def forward(self, hidden):
        return hidden + self.down(self.act(self.up(hidden)))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(11, 8)
        self.layers = nn.ModuleList(Block() for _ in range(2))

    def forward(self, ids):
        hidden = self.embed(ids)
        for layer in self.layers:
            hidden = layer(hidden)
        return hidden.pow(2).mean()


def test_the_counted_bytes_are_what_autograd_saves_by_module():
    torch.manual_seed(0)
    model, ids = Tiny(), torch.randint(0, 11, (3, 5))
    counter = bench.SavedCounter()
    counter.start()
    try:
        model(ids).backward()
        model(ids).backward()  # a second micro-batch: not counted
    finally:
        counter.stop()
    summary = counter.summary()
    assert summary["batch"] == [3, 5]
    assert summary["total_bytes"] == saved_bytes(model, lambda: model(ids))
    modules = {row["module"]: row for row in summary["modules"]}
    # Each block's down keeps the SiLU output, its SiLU the up's output: the two blocks' rows folded into one.
    assert modules["layers.*.down"]["tensors"] == modules["layers.*.act"]["tensors"] == 2
    assert sum(row["bytes"] for row in modules.values()) == summary["total_bytes"]
    assert modules["layers.*.down"]["largest"] == "(15, 16) float32"  # Linear keeps its input as [rows, features]
    assert "Tiny itself" in modules  # pow and mean outside the layers


def test_layer_numbers_and_the_peft_prefix_are_folded():
    assert bench._folded("model.base_model.model.model.layers.17.mlp.up_proj.lora_A.default") == \
        "layers.*.mlp.up_proj.lora_A.default"
    assert bench._folded("model.base_model.model.model.norm") == "norm"
