"""Whether a module runs Llama's own forward: transformers copies Llama's norm and MLP code into Mistral, Qwen2/3,
Phi3 and others, so the same bytecode means the same computation, whatever the class is called. And the swap of
such modules' forward for a training-only one, undone on exit."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

from torch import nn


def runs_forward_of(module: nn.Module, reference: type[nn.Module]) -> bool:
    forward = getattr(type(module), "forward", None)
    code, expected = getattr(forward, "__code__", None), reference.forward.__code__
    return code is not None and (code.co_code, code.co_consts, code.co_names) == (
        expected.co_code, expected.co_consts, expected.co_names)


@contextmanager
def forward_swapped(modules: list[nn.Module], forward: Callable):
    """Inside the block each module runs `forward(module, ...)` (an instance attribute: the class is untouched);
    yields how many."""
    for module in modules:
        module.forward = forward.__get__(module)
    try:
        yield len(modules)
    finally:
        for module in modules:
            del module.forward
