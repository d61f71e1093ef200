"""Data-parallel strategies through accelerate: DDP by default, FSDP or DeepSpeed ZeRO when asked.

The strategy only matters when several processes run (`tunesmith train --nproc N`, torchrun or
accelerate launch); in one process the plugins are not created.
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
        from accelerate import FullyShardedDataParallelPlugin

        return {"fsdp_plugin": FullyShardedDataParallelPlugin(
            fsdp_version=2, reshard_after_forward=dist.fsdp_sharding != "shard_grad_op",
            cpu_offload=dist.fsdp_cpu_offload, auto_wrap_policy="transformer_based_wrap",
        )}
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        raise ConfigError("distributed.strategy: deepspeed needs the deepspeed package (pip install deepspeed)") from None
    from accelerate import DeepSpeedPlugin

    return {"deepspeed_plugin": DeepSpeedPlugin(zero_stage=dist.zero_stage,
                                                gradient_clipping=config.training.max_grad_norm)}


def check_strategy(config, accelerator) -> None:
    """Refuse to run data-parallel under another strategy than the one asked for (accelerate falls back quietly)."""
    wanted = config.distributed.strategy
    if accelerator.num_processes == 1 or wanted == "ddp":
        return
    actual = accelerator.distributed_type.value
    if wanted.upper() not in actual.upper():
        raise ConfigError(
            f"distributed.strategy: {wanted} is not available here (accelerate runs {actual}); {wanted} needs "
            "CUDA GPUs, use strategy: ddp on CPU"
        )


def preflight(config) -> None:
    """Checks that can fail before any process starts (one message instead of one per process)."""
    import torch

    if config.distributed.strategy != "ddp" and not torch.cuda.is_available():
        raise ConfigError(f"distributed.strategy: {config.distributed.strategy} needs CUDA GPUs; use strategy: ddp on CPU")


def launch_local(nproc: int, argv: list[str]) -> int:
    """Re-run this command as `nproc` data-parallel processes on this machine (torchrun, gloo on CPU)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               "--master_addr=127.0.0.1", f"--master_port={port}", "-m", "tunesmith", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))}
    return subprocess.call(command, env=env)
