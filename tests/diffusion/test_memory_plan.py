"""The diffusion memory check refuses a run that cannot fit before it starts, pointing full DreamBooth at LoRA."""

import pytest
import torch

from tunesmith.errors import TunesmithError
from tunesmith.methods import memory

GIB = memory.GIB


@pytest.mark.parametrize(("adapter", "hint"), [
    (False, "try method.name: dreambooth_lora (the same objective, LoRA weights only)"),
    (True, "lower data.resolution or use a smaller model"),
])
def test_a_run_that_does_not_fit_is_refused_with_the_way_out(monkeypatch, adapter, hint):
    monkeypatch.setattr(memory, "device_memory", lambda device: 8 * GIB)
    need = memory.MemoryEstimate(weights=4 * GIB, gradients=3 * GIB, optimizer=6 * GIB)

    with pytest.raises(TunesmithError) as raised:
        memory.check_fits_diffusion("dreambooth", need, torch.device("cpu"), adapter=adapter)

    assert str(raised.value) == ("dreambooth needs ~13.0 GiB for weights, gradients and optimizer state; this machine "
                                 f"has 8.0 GiB available; {hint}")
    memory.check_fits_diffusion("dreambooth", memory.MemoryEstimate(4 * GIB, 1 * GIB, 2 * GIB), torch.device("cpu"),
                                adapter=adapter)  # 7 GiB fits
