"""Pick the mixed-precision mode: `auto` is the fastest mode that is correct on this device."""

from __future__ import annotations

import torch

from tunesmith.errors import ConfigError


def cpu_supports_bf16() -> bool:
    # oneDNN runs bf16 matmuls natively only with AVX512-BF16 or AMX; elsewhere bf16 autocast is slower than fp32.
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(requested: str, device: torch.device) -> str:
    """Return accelerate's mixed_precision value: 'no', 'bf16' or 'fp16'."""
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        if requested == "auto":
            return "bf16" if bf16 else "fp16"
        if requested == "bf16" and not bf16:
            raise ConfigError("training.precision: bf16 is not supported on this GPU; use fp16 or auto")
    else:
        if requested == "auto":
            return "bf16" if device.type == "cpu" and cpu_supports_bf16() else "no"
        if requested == "fp16":
            raise ConfigError("training.precision: fp16 needs a GPU; on CPU use bf16, fp32 or auto")
    return "no" if requested == "fp32" else requested
