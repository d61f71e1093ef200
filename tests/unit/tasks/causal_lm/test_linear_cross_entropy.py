import pytest
import torch
import torch.nn.functional as F

from tunesmith.tasks.causal_lm import linear_cross_entropy as lce_module
from tunesmith.tasks.causal_lm.linear_cross_entropy import linear_cross_entropy


@pytest.fixture
def inputs():
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(300, 16, generator=generator)
    weight = torch.randn(50, 16, generator=generator)
    targets = torch.randint(0, 50, (300,), generator=generator)
    return hidden, weight, targets


def loss_and_grads(compute, hidden, weight):
    hidden = hidden.clone().requires_grad_()
    weight = weight.clone().requires_grad_()
    loss = compute(hidden, weight)
    (loss * 0.37).backward()  # a non-unit upstream gradient must scale both gradients
    return loss.detach(), hidden.grad, weight.grad


@pytest.mark.parametrize("chunk", [7, 128, 1000])
def test_matches_cross_entropy_and_its_gradients_in_float32(inputs, monkeypatch, chunk):
    monkeypatch.setattr(lce_module, "CHUNK_TOKENS", chunk)
    hidden, weight, targets = inputs
    reference = loss_and_grads(lambda h, w: F.cross_entropy(h @ w.T, targets, reduction="sum"), hidden, weight)
    fused = loss_and_grads(lambda h, w: linear_cross_entropy(h, w, targets), hidden, weight)
    for expected, actual in zip(reference, fused):
        torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-5)


def test_frozen_weight_gets_no_gradient(inputs):
    hidden, weight, targets = inputs
    hidden = hidden.clone().requires_grad_()
    linear_cross_entropy(hidden, weight, targets).backward()
    assert weight.grad is None and hidden.grad is not None


def test_follows_autocast_like_a_linear_layer(inputs):
    hidden, weight, targets = inputs
    head = torch.nn.Linear(16, 50, bias=False)
    head.weight.data.copy_(weight)

    def reference(h, w):
        return F.cross_entropy(F.linear(h, w).float(), targets, reduction="sum")

    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = loss_and_grads(reference, hidden, weight)
        actual = loss_and_grads(lambda h, w: linear_cross_entropy(h, w, targets), hidden, weight)
    assert actual[1].dtype == hidden.dtype and actual[2].dtype == weight.dtype
    for e, a in zip(expected, actual):
        torch.testing.assert_close(a, e, atol=0.05 * e.abs().max().item(), rtol=0.02)
    # bf16 matmuls really happened: the float32 result differs.
    float32 = loss_and_grads(lambda h, w: linear_cross_entropy(h, w, targets), hidden, weight)
    assert not torch.equal(float32[0], actual[0])


def test_without_gradients_only_the_loss_is_computed(inputs, monkeypatch):
    hidden, weight, targets = inputs
    expected = F.cross_entropy(hidden @ weight.T, targets, reduction="sum")
    monkeypatch.setattr(lce_module._LinearCrossEntropy, "apply", None)  # would raise if called
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(hidden, weight, targets), expected)
    torch.testing.assert_close(linear_cross_entropy(hidden, weight, targets), expected)  # nothing requires grad


def test_no_rows_gives_zero_and_backpropagates():
    hidden = torch.zeros(0, 16, requires_grad=True)
    loss = linear_cross_entropy(hidden, torch.randn(50, 16), torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0 and hidden.grad.shape == (0, 16)


@pytest.mark.parametrize("chunk", [7, 128])
def test_bf16_chunks_in_reused_buffers_equal_fresh_tensors_bit_for_bit(inputs, monkeypatch, chunk):
    """The buffers written with out= (the last chunk shorter than the rest) give what per-chunk tensors give."""
    monkeypatch.setattr(lce_module, "CHUNK_TOKENS", chunk)
    hidden, weight, targets = inputs
    h, w = hidden.bfloat16(), weight.bfloat16()
    expected_loss, expected_grad = torch.zeros(()), torch.empty_like(h)
    for start in range(0, targets.numel(), chunk):
        rows = slice(start, start + chunk)
        log_probs = torch.log_softmax((h[rows] @ w.T).float(), dim=-1)
        expected_loss -= log_probs.gather(1, targets[rows, None]).sum()
        grad = log_probs.exp_()
        grad[torch.arange(grad.shape[0]), targets[rows]] -= 1
        expected_grad[rows] = grad.bfloat16() @ w

    hidden = hidden.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = linear_cross_entropy(hidden, weight, targets)
    loss.backward()
    assert torch.equal(loss, expected_loss)
    assert torch.equal(hidden.grad, expected_grad.float())
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(linear_cross_entropy(hidden, weight, targets), expected_loss)
