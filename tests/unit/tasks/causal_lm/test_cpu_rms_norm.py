"""Llama-style RMSNorms swapped for the hand-written backward on CPU: same forward bits, same gradients to
float32 rounding, weight gradients when the weight trains, and the model's own norms back on exit."""

import copy

import torch
from transformers.models.gemma.modeling_gemma import GemmaRMSNorm
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from tunesmith.tasks.causal_lm.cpu_rms_norm import cpu_rms_norm

CPU = torch.device("cpu")


def forward_backward(module, x, grad):
    x = x.clone().requires_grad_()
    out = module(x)
    out.backward(grad)
    return out.detach(), x.grad, module.weight.grad


def test_same_forward_bits_and_gradients_as_llama():
    torch.manual_seed(0)
    norm = LlamaRMSNorm(48, eps=1e-5)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x, grad = torch.randn(3, 7, 48) * 3, torch.randn(3, 7, 48)
    expected = forward_backward(copy.deepcopy(norm), x, grad)
    with cpu_rms_norm(norm, CPU) as swapped:
        assert swapped == 1
        out, grad_x, grad_weight = forward_backward(norm, x, grad)
    assert torch.equal(out, expected[0])
    torch.testing.assert_close(grad_x, expected[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_weight, expected[2], rtol=1e-5, atol=1e-5)


def test_frozen_weight_gets_no_gradient_and_input_gradient_matches():
    torch.manual_seed(1)
    norm = LlamaRMSNorm(16).requires_grad_(False)
    x, grad = torch.randn(5, 16), torch.randn(5, 16)
    expected = forward_backward(copy.deepcopy(norm), x, grad)
    with cpu_rms_norm(norm, CPU):
        _, grad_x, grad_weight = forward_backward(norm, x, grad)
    assert grad_weight is None
    torch.testing.assert_close(grad_x, expected[1], rtol=1e-5, atol=1e-6)


def test_whole_model_norms_swapped_and_restored(tiny_llama):
    model = copy.deepcopy(tiny_llama)
    ids = torch.arange(20).view(2, 10)
    expected = model(input_ids=ids).logits
    with cpu_rms_norm(model, CPU) as swapped:
        assert swapped == 5  # two per block, two blocks, and the final norm
        assert torch.equal(model(input_ids=ids).logits, expected)
    assert all("forward" not in m.__dict__ for m in model.modules())


def test_other_norms_dtypes_and_devices_keep_their_forward():
    with cpu_rms_norm(GemmaRMSNorm(8), CPU) as swapped:  # (1 + weight): a different formula
        assert swapped == 0
    with cpu_rms_norm(LlamaRMSNorm(8), torch.device("meta")) as swapped:
        assert swapped == 0
    norm = LlamaRMSNorm(8).to(torch.bfloat16)
    x = torch.randn(2, 8, dtype=torch.bfloat16)
    expected = copy.deepcopy(norm)(x)
    with cpu_rms_norm(norm, CPU):
        assert torch.equal(norm(x), expected)  # bf16 weights: the model's own forward
