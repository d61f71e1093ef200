"""The plan's memory estimate and the stop-with-advice when a method does not fit."""

import pytest
import torch

from tunesmith.errors import TunesmithError
from tunesmith.methods import memory


def test_full_counts_weights_gradients_and_two_adam_states(tiny_llama):
    need = memory.estimate(tiny_llama)
    params = sum(p.numel() for p in tiny_llama.parameters())  # tied head counted once by parameters()
    assert need.gradients == params * 4
    assert need.optimizer == params * 8
    assert need.weights >= params * 4


def test_frozen_parameters_need_no_training_state(tiny_llama):
    tiny_llama.requires_grad_(False)
    need = memory.estimate(tiny_llama)
    assert need.gradients == need.optimizer == 0


def test_does_not_fit_names_a_method_that_would(monkeypatch, tiny_llama):
    monkeypatch.setattr(memory, "device_memory", lambda device: 3 * memory.GIB)
    need = memory.MemoryEstimate(weights=2 * memory.GIB, gradients=2 * memory.GIB, optimizer=4 * memory.GIB)
    with pytest.raises(TunesmithError) as info:
        memory.check_fits("full", need, total_params=500_000_000, device=torch.device("cpu"))
    assert str(info.value) == (
        "full needs ~8.0 GiB for weights, gradients and optimizer state; this machine has 3.0 GiB available; "
        "try method.name: lora"
    )
