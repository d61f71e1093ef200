"""Data-parallel strategies through accelerate: DDP by default, FSDP2 or DeepSpeed ZeRO when asked.

The strategy only matters when several processes run (`tunesmith train --nproc N`, torchrun or
accelerate launch); in one process the plugins are not created. FSDP2 runs on GPUs and on CPU (gloo);
DeepSpeed needs CUDA GPUs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from tunesmith.errors import ConfigError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def strategy_plugins(config) -> dict:
    dist = config.distributed
    if world_size() == 1 or dist.strategy == "ddp":
        return {}
    if dist.strategy == "fsdp":
        import torch
        from accelerate import FullyShardedDataParallelPlugin
        from torch.distributed.fsdp import MixedPrecisionPolicy

        return {"fsdp_plugin": FullyShardedDataParallelPlugin(
            fsdp_version=2, reshard_after_forward=dist.fsdp_sharding != "shard_grad_op",
            # Offloading moves shards from GPU to CPU memory; training on CPU they are there already.
            cpu_offload=dist.fsdp_cpu_offload and torch.cuda.is_available(),
            auto_wrap_policy="transformer_based_wrap",
            # fp32 parameters, gradients and loss as under DDP; the loop's autocast computes in bf16/fp16.
            # (accelerate's default for bf16 casts the parameters, the gradient reduction and the loss to bf16.)
            mixed_precision_policy=MixedPrecisionPolicy(),
        )}
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        raise ConfigError("distributed.strategy: deepspeed needs the deepspeed package (pip install deepspeed)") from None
    from accelerate import DeepSpeedPlugin

    return {"deepspeed_plugin": DeepSpeedPlugin(zero_stage=dist.zero_stage,
                                                gradient_clipping=config.training.max_grad_norm)}


def use_fsdp_on_cpu(accelerator, plugins: dict) -> None:
    """Make accelerate shard with FSDP2 on CPU processes too, as it does on GPUs.

    accelerate 1.15 selects FSDP only for GPU-like multi-device types (accelerate/state.py:986-1016; MULTI_CPU
    is not among them) and otherwise quietly runs plain multi-process data parallelism. Setting the state as it
    would have been set there makes `prepare()` take accelerate's own FSDP2 path, which works over gloo.
    """
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    plugin = plugins.get("fsdp_plugin")
    if plugin is None or accelerator.distributed_type != DistributedType.MULTI_CPU:
        return
    accelerator.state.distributed_type = DistributedType.FSDP
    accelerator.state.fsdp_plugin = plugin
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP


def check_strategy(config, accelerator) -> None:
    """Refuse to run data-parallel under another strategy than the one asked for (accelerate falls back quietly)."""
    wanted = config.distributed.strategy
    if accelerator.num_processes == 1 or wanted == "ddp":
        return
    actual = accelerator.distributed_type.value
    if wanted.upper() not in actual.upper():
        raise ConfigError(
            f"distributed.strategy: {wanted} is not available here (accelerate runs {actual}); {wanted} needs "
            "CUDA GPUs, use strategy: ddp or fsdp on CPU"
        )


def preflight(config) -> None:
    """Checks that can fail before any process starts (one message instead of one per process)."""
    import torch

    if config.distributed.strategy == "deepspeed" and not torch.cuda.is_available():
        raise ConfigError("distributed.strategy: deepspeed needs CUDA GPUs; use strategy: ddp or fsdp on CPU")


def launch_local(nproc: int, argv: list[str]) -> int:
    """Re-run this command as `nproc` data-parallel processes on this machine (torchrun, gloo on CPU)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               "--master_addr=127.0.0.1", f"--master_port={port}", "-m", "tunesmith", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))}
    return subprocess.call(command, env=env)
