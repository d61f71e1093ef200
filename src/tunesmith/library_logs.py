"""Dropping known, harmless library log lines at the call that provokes them (never globally: the same logger's
other messages, and the same message elsewhere, still show)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

# diffusers' note when a LoRA file has no layers for a text encoder (a UNet-only LoRA): expected, not a problem
NO_TEXT_ENCODER_LORA = ("diffusers.loaders.lora_base", "No LoRA keys associated to CLIPTextModel")
# diffusers' note on every from_single_file: it casts the loaded components with .to(dtype), and these have no
# float32-only modules ("[]")
FP32_MODULES_CAST = ("diffusers.models.modeling_utils", "that should be kept in float32: []")


@contextmanager
def dropping(*notes: tuple[str, str]) -> Iterator[None]:
    """While inside, drop the records of each (logger name, message fragment) in `notes`."""
    added = []
    for name, fragment in notes:
        def drop(record, fragment=fragment):
            return fragment not in record.getMessage()

        logger = logging.getLogger(name)
        logger.addFilter(drop)
        added.append((logger, drop))
    try:
        yield
    finally:
        for logger, drop in added:
            logger.removeFilter(drop)
