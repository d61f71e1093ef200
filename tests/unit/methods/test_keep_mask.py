import pytest
import torch

from tunesmith.methods.keep_mask import apply_keep


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("scale", [1.0, 1.25, 1 / 0.9])
def test_apply_keep_gives_where_s_values(dtype, scale):
    torch.manual_seed(0)
    x = torch.randn(3, 7, 5).to(dtype)
    keep = torch.rand(3, 7, 5) > 0.3
    expected = torch.where(keep, x, 0)
    if scale != 1.0:
        expected = expected.mul_(scale)
    out = apply_keep(x, keep, scale)
    assert out.dtype == dtype
    assert torch.equal(out, expected)
    assert out.data_ptr() != x.data_ptr()


def test_each_call_returns_its_own_tensor():
    x = torch.arange(1.0, 13.0).view(3, 4)
    first = apply_keep(x, torch.ones(3, 4, dtype=torch.bool))
    second = apply_keep(x * 2, torch.zeros(3, 4, dtype=torch.bool))
    assert torch.equal(first, x) and torch.equal(second, torch.zeros(3, 4))
    assert torch.equal(x, torch.arange(1.0, 13.0).view(3, 4))


def test_a_non_contiguous_input_is_masked_element_by_element():
    x = torch.randn(6, 4).t()
    keep = torch.rand(4, 6) > 0.5
    assert torch.equal(apply_keep(x, keep), torch.where(keep, x, 0))


def test_under_autograd_the_gradient_is_masked_too():
    x = torch.randn(4, 3, requires_grad=True)
    keep = torch.tensor([[True, False, True]] * 4)
    apply_keep(x, keep, 2.0).sum().backward()
    assert torch.equal(x.grad, keep.float() * 2.0)
