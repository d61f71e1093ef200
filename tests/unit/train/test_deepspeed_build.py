"""ZeRO training needs no compiled DeepSpeed kernel: the shared-memory all-reduce only its tensor-parallel inference
calls is not built (a g++ build of ~50 s on a fresh machine)."""

import importlib

import pytest


def test_the_inference_all_reduce_kernel_is_not_built():
    pytest.importorskip("deepspeed")
    from tunesmith.train.deepspeed_zero import skip_inference_all_reduce_build

    skip_inference_all_reduce_build()
    assert importlib.import_module("deepspeed.comm.torch").build_shm_op() is None
