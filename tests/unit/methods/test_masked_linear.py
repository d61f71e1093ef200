"""The masked A product gives F.linear's values and gradients bit for bit while keeping the mask and x, or, for an
input a `rebuildable` block vouches for, the tensors x is made from instead of x."""

import threading

import pytest
import torch
import torch.nn.functional as F

from tunesmith.methods.cpu_dropout import masked
from tunesmith.methods.masked_linear import masked_linear, rebuildable, recipe_for
from tunesmith.train.saved_activations import saved_bytes


def _silu_gate(gate, up):
    return F.silu(gate) * up


def _values_and_grads(forward, *leaves):
    out = forward()
    out.pow(2).sum().backward()
    grads = [leaf.grad.clone() for leaf in leaves]
    for leaf in leaves:
        leaf.grad = None
    return out.detach(), grads


def test_masked_linear_gives_the_masked_products_values_and_gradients():
    x = torch.randn(2, 9, 24, requires_grad=True)
    weight = torch.randn(4, 24, requires_grad=True)
    keep = torch.rand(2, 9, 24) > 0.3
    out, grads = _values_and_grads(lambda: masked_linear(x, keep, weight), x, weight)
    expected, expected_grads = _values_and_grads(lambda: F.linear(masked(x, keep), weight), x, weight)
    assert torch.equal(out, expected)
    assert all(torch.equal(g, e) for g, e in zip(grads, expected_grads))


@pytest.mark.parametrize("masks", [True, False])
def test_a_rebuilt_input_gives_the_same_values_and_gradients_keeping_only_its_sources(masks):
    torch.manual_seed(0)
    gate, up = torch.randn(3, 7, 40, requires_grad=True), torch.randn(3, 7, 40, requires_grad=True)
    weight = torch.randn(4, 40, requires_grad=True)
    keep = torch.rand(3, 7, 40) > 0.3 if masks else None

    def forward(rebuilt: bool):
        # gate and up are kept by the product's own backward here too (mul keeps both factors' inputs)
        g, u = gate * 1.0, up * 1.0
        x = _silu_gate(g, u)
        if not rebuilt:
            return masked_linear(x, keep, weight)
        with rebuildable(x, _silu_gate, g, u):
            return masked_linear(x, keep, weight, recipe_for(x))

    out, grads = _values_and_grads(lambda: forward(True), gate, up, weight)
    expected, expected_grads = _values_and_grads(lambda: forward(False), gate, up, weight)
    assert torch.equal(out, expected)
    assert all(torch.equal(g, e) for g, e in zip(grads, expected_grads))
    keeps = saved_bytes(torch.nn.Linear(1, 1), lambda: forward(False))
    rebuilt_keeps = saved_bytes(torch.nn.Linear(1, 1), lambda: forward(True))
    assert keeps - rebuilt_keeps == 3 * 7 * 40 * 4  # x itself: its sources are kept anyway


def test_a_recipe_holds_for_its_tensor_unchanged_inside_the_block_only():
    x, other = torch.randn(4), torch.randn(4)
    assert recipe_for(x) is None
    with rebuildable(x, _silu_gate, other, other):
        assert recipe_for(x)[1] == (other, other) and recipe_for(other) is None
        with rebuildable(other, _silu_gate, x, x):  # nested: the inner block's tensor, then the outer's again
            assert recipe_for(other) is not None and recipe_for(x) is None
        assert recipe_for(x) is not None
        x.add_(1)  # changed in place: no longer what the recipe makes
        assert recipe_for(x) is None
    assert recipe_for(other) is None


def test_a_recipe_is_seen_only_by_its_own_thread():
    x, seen = torch.randn(4), []
    with rebuildable(x, _silu_gate, x, x):
        other = threading.Thread(target=lambda: seen.append(recipe_for(x)))
        other.start()
        other.join()
        assert recipe_for(x) is not None
    assert seen == [None]
