"""A kept result serves only the same, unchanged tensor with the same key."""

import torch

from tunesmith.methods.latest_input import LatestResult


def test_result_is_kept_for_the_same_unchanged_tensor_and_key_only():
    latest = LatestResult()
    x = torch.randn(3, 4)
    assert latest.get(x, torch.bfloat16) is None
    first = latest.put(x, torch.bfloat16, x.to(torch.bfloat16))
    assert latest.get(x, torch.bfloat16) is first
    assert latest.get(x, torch.float16) is None  # another key
    assert latest.get(x.clone(), torch.bfloat16) is None  # equal values, another tensor
    x.add_(1)  # changed in place: a new version
    assert latest.get(x, torch.bfloat16) is None
