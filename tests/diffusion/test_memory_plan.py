"""The diffusion memory check refuses a run that cannot fit before it starts, with the numbers and the way out:
full DreamBooth's LoRA variant, gradient checkpointing, batch 1, a lower resolution (the device memory is faked)."""

import pytest
import torch

from tunesmith.errors import TunesmithError
from tunesmith.methods import memory

GIB = memory.GIB
CPU = torch.device("cpu")
AVAILABLE = "this machine has 8.0 GiB available, of which a plan fills at most 90%"
PRIOR = "method.name: dreambooth_lora (the same objective, LoRA weights only)"


@pytest.fixture(autouse=True)
def eight_gib(monkeypatch):
    monkeypatch.setattr(memory, "device_memory", lambda device: 8 * GIB)


def refusal(need, adapter=False, activations=None) -> str:
    with pytest.raises(TunesmithError) as raised:
        memory.check_fits_diffusion("dreambooth", need, CPU, adapter, activations)
    return str(raised.value)


@pytest.mark.parametrize(("adapter", "hint"), [(False, PRIOR), (True, "a smaller model")])
def test_weights_and_training_state_that_do_not_fit_are_refused(adapter, hint):
    need = memory.MemoryEstimate(weights=4 * GIB, gradients=3 * GIB, optimizer=6 * GIB)

    assert refusal(need, adapter) == (f"dreambooth needs ~13.0 GiB for weights, gradients and optimizer state; "
                                      f"{AVAILABLE}; try {hint}")
    memory.check_fits_diffusion("dreambooth", memory.MemoryEstimate(4 * GIB, 1 * GIB, 2 * GIB), CPU, adapter)  # 7


def activations(per_example=1 * GIB, examples=4, smallest=4, checkpointing=True):
    return memory.Activations(per_example, examples, smallest, checkpointing, resolution=512)


def test_activations_that_do_not_fit_even_checkpointed_are_refused_with_the_numbers():
    need = memory.MemoryEstimate(weights=2 * GIB, gradients=1 * GIB, optimizer=1 * GIB)

    assert refusal(need, activations=activations()) == (
        "dreambooth needs ~8.0 GiB: weights, gradients and optimizer state 4.0 + activations 4.0 (4 examples at "
        f"512 px, with gradient checkpointing); {AVAILABLE}; try {PRIOR}, training.batch_size: 1 with more "
        "gradient_accumulation (the same step; activations ~1.00 GiB) or a data.resolution below 512")
    assert refusal(need, adapter=True, activations=activations(checkpointing=False)).endswith(
        "try training.gradient_checkpointing: auto, training.batch_size: 1 with more gradient_accumulation (the same "
        "step; activations ~1.00 GiB) or a data.resolution below 512")
    assert refusal(need, activations=activations(per_example=None)) == (
        "dreambooth needs more than the device holds: weights, gradients and optimizer state ~4.0 GiB, and one example "
        f"at 512 px ran out of memory in its forward pass with gradient checkpointing; {AVAILABLE}; try {PRIOR} or a "
        "data.resolution below 512")


def test_what_fits_at_the_smallest_micro_batch_is_not_refused():
    need = memory.MemoryEstimate(weights=2 * GIB, gradients=1 * GIB, optimizer=1 * GIB)
    # batch_size: auto falls back to one example a micro-batch: 4 + 1 GiB fits in 90% of 8
    memory.check_fits_diffusion("dreambooth", need, CPU, False, activations(smallest=1))
    memory.check_fits_diffusion("dreambooth", need, CPU, False, activations(examples=3, smallest=3))  # 4 + 3
