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


def _distributed(**fields):
    from tunesmith.config.pipeline import DistributedConfig

    return DistributedConfig(**fields)


GIB4 = memory.MemoryEstimate(weights=4 * memory.GIB, gradients=4 * memory.GIB, optimizer=8 * memory.GIB)


@pytest.mark.parametrize("fields, expected", [
    ({"strategy": "ddp"}, (4, 4, 8)),
    ({"strategy": "fsdp"}, (1, 1, 2)),
    ({"strategy": "fsdp", "fsdp_sharding": "shard_grad_op"}, (4, 1, 2)),
    ({"strategy": "fsdp", "fsdp_sharding": "hybrid_shard"}, (2, 2, 4)),  # 2 processes per node
    ({"strategy": "deepspeed", "zero_stage": 1}, (4, 4, 2)),
    ({"strategy": "deepspeed", "zero_stage": 2}, (4, 1, 2)),
    ({"strategy": "deepspeed", "zero_stage": 3}, (1, 1, 2)),
])
def test_each_strategy_partitions_its_parts_of_the_memory(fields, expected):
    per = memory.per_process(GIB4, _distributed(**fields), world_size=4, local_world_size=2)
    assert (per.weights, per.gradients, per.optimizer) == tuple(g * memory.GIB for g in expected)
    assert memory.per_process(GIB4, _distributed(**fields), world_size=1, local_world_size=1) == GIB4


def test_partitioned_full_fits_where_one_process_would_not(monkeypatch):
    monkeypatch.setattr(memory, "device_memory", lambda device: 6 * memory.GIB)
    per = memory.per_process(GIB4, _distributed(strategy="deepspeed", zero_stage=3), world_size=4, local_world_size=4)
    memory.check_fits("full", per, total_params=10**9, device=torch.device("cpu"), loaded_weights=GIB4.weights)
    assert "per process of 4" in memory.describe(per)
    with pytest.raises(TunesmithError, match=r"full needs ~16.0 GiB for"):
        memory.check_fits("full", GIB4, total_params=10**9, device=torch.device("cpu"), loaded_weights=GIB4.weights)


def test_a_model_too_big_to_load_whole_is_refused_even_if_it_fits_partitioned(monkeypatch):
    monkeypatch.setattr(memory, "device_memory", lambda device: 3 * memory.GIB)
    per = memory.per_process(GIB4, _distributed(strategy="fsdp"), world_size=8, local_world_size=8)
    with pytest.raises(TunesmithError, match=r"fits when partitioned \(~2.0 GiB per process\), but every process "
                                             r"first loads the whole model \(~4.0 GiB\)"):
        memory.check_fits("full", per, total_params=10**9, device=torch.device("cpu"), loaded_weights=GIB4.weights)
