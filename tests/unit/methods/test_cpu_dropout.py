import pytest
import torch
from torch import nn

from tunesmith.methods.cpu_dropout import CpuDropout, use_cpu_dropout


@pytest.mark.parametrize("p", [0.05, 0.3])
def test_drops_the_right_fraction_and_keeps_the_mean(p):
    x = torch.ones(1000, 1000)
    out = CpuDropout(p).train()(x)
    dropped = (out == 0).float().mean().item()
    assert abs(dropped - p) < 0.002
    kept = out[out != 0]
    assert torch.allclose(kept, torch.full_like(kept, kept[0].item()))
    assert abs(kept[0].item() - 1 / (1 - p)) < 1e-3
    assert abs(out.mean().item() - 1.0) < 0.01


def test_masks_follow_the_seed_and_differ_between_calls():
    dropout, x = CpuDropout(0.5).train(), torch.ones(64, 33)  # an element count not divisible by 4
    torch.manual_seed(1)
    first, second = dropout(x), dropout(x)
    torch.manual_seed(1)
    assert torch.equal(dropout(x), first)
    assert not torch.equal(first, second)


def test_gradient_is_the_scaled_mask():
    x = torch.randn(50, 40, requires_grad=True)
    out = CpuDropout(0.2).train()(x)
    out.sum().backward()
    kept = out != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / (1 - 0.2)), atol=1e-4)
    assert torch.all(x.grad[~kept] == 0)


def test_eval_mode_and_zero_probability_are_the_identity():
    x = torch.randn(10, 10)
    assert torch.equal(CpuDropout(0.5).eval()(x), x)
    assert torch.equal(CpuDropout(0.0).train()(x), x)
    assert torch.equal(CpuDropout(1.0).train()(x), torch.zeros_like(x))


def test_swaps_lora_dropout_in_a_peft_model(tiny_llama):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_llama, LoraConfig(target_modules=["q_proj", "v_proj"], r=4, lora_dropout=0.1))
    assert use_cpu_dropout(model) == 2 * 2  # two layers, two adapted modules each
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert dropouts and all(type(m) is CpuDropout and m.p == 0.1 for m in dropouts)
