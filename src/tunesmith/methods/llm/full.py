"""`full`: every weight trains."""

from __future__ import annotations

from typing import Literal

from tunesmith.config.section import Section
from tunesmith.methods.registry import Method, register


class FullMethod(Section):
    name: Literal["full"]


def apply(model, options: FullMethod, tokenizer_path=None):
    model.requires_grad_(True)
    return model


METHOD = register(Method(
    name="full", family="llm", options=FullMethod, learning_rate=2e-5, summary="every weight",
    apply=apply, saves="model",
))
