"""bitsandbytes settings for a qlora base: 4-bit NF4/FP4 or 8-bit, on CUDA or CPU."""

from __future__ import annotations

import logging

import torch

from tunesmith.methods.llm.qlora import QLoraMethod

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# accelerate's mixed_precision value -> the dtype the 4-bit matmuls should compute in
MIXED_PRECISION_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "no": torch.float32}


def bnb_config(method: QLoraMethod, mixed_precision: str = "no"):
    from transformers import BitsAndBytesConfig

    if method.bits == 8:
        # bitsandbytes casts 8-bit matmul inputs to fp16 and logs that on every forward pass.
        logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = (
        MIXED_PRECISION_DTYPES[mixed_precision] if method.compute_dtype == "auto" else DTYPES[method.compute_dtype]
    )
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=method.quant_type,
        bnb_4bit_use_double_quant=method.double_quant,
        bnb_4bit_compute_dtype=compute,
    )
