"""Data-parallel strategies through accelerate: DDP by default, FSDP2 or DeepSpeed ZeRO when asked.

The strategy only matters when several processes run (`tunesmith train --nproc N`, torchrun or
accelerate launch); in one process the plugins are not created. Both FSDP2 and DeepSpeed ZeRO run on GPUs
and on CPU (gloo).
"""

from __future__ import annotations

import os
import sys

from tunesmith.errors import ConfigError
from tunesmith.train.deepspeed_zero import accelerator_kwargs as deepspeed_accelerator_kwargs
from tunesmith.train.deepspeed_zero import deepspeed_plugin, load_whole_weights, quiet_on_cpu, require_deepspeed


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_world_size() -> int:
    """Processes on this machine (torchrun and accelerate set it)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))


def is_main_process() -> bool:
    """Rank 0, or the only process; readable before any process group exists (set by torchrun/accelerate)."""
    return os.environ.get("RANK", "0") == "0"


def wait_for_everyone() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_from_main(accelerator, value):
    """Rank 0's `value` on every rank (a collective)."""
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value], from_process=0)[0]


def strategy_kwargs(config) -> dict:
    """Accelerator arguments for the configured strategy (plugins, and for DeepSpeed on CPU the device choice)."""
    dist = config.distributed
    quiet_on_cpu()
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
    require_deepspeed()
    return {"deepspeed_plugin": deepspeed_plugin(config, world_size()), **deepspeed_accelerator_kwargs()}


def strategy_name(accelerator) -> str:
    """'fsdp' or 'deepspeed' when that strategy runs, else 'ddp' (which covers one process)."""
    from accelerate.utils import DistributedType

    return {DistributedType.FSDP: "fsdp", DistributedType.DEEPSPEED: "deepspeed"}.get(accelerator.distributed_type,
                                                                                     "ddp")


def shards_model(accelerator) -> bool:
    """FSDP and DeepSpeed own the model's weights once prepared (sharded, partitioned or recast)."""
    return strategy_name(accelerator) != "ddp"


def reset_accelerate_state() -> None:
    """Let the next Accelerator in this process take another precision or plugin (stages, refinement rounds, tests,
    method trials); the process group of a multi-process run stays."""
    import torch
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    shared = PartialState._shared_state
    if distributed and shared.get("distributed_type") == DistributedType.FSDP and not torch.cuda.is_available():
        shared["distributed_type"] = DistributedType.MULTI_CPU  # undo _use_fsdp_on_cpu, which runs again
    AcceleratorState._reset_state(reset_partial_state=not distributed)


def finish_strategy(accelerator, kwargs: dict) -> None:
    """What accelerate leaves undone for the configured strategy, right after the Accelerator is made."""
    _use_fsdp_on_cpu(accelerator, kwargs)
    if "deepspeed_plugin" in kwargs:
        load_whole_weights()


def _use_fsdp_on_cpu(accelerator, kwargs: dict) -> None:
    """Make accelerate shard with FSDP2 on CPU processes too, as it does on GPUs.

    accelerate 1.15 selects FSDP only for GPU-like multi-device types (accelerate/state.py:986-1016; MULTI_CPU
    is not among them) and otherwise quietly runs plain multi-process data parallelism. Setting the state as it
    would have been set there makes `prepare()` take accelerate's own FSDP2 path, which works over gloo.
    """
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    plugin = kwargs.get("fsdp_plugin")
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
            f"distributed.strategy: {wanted} is not available here (accelerate runs {actual}); use strategy: ddp"
        )


def preflight(config) -> None:
    """Checks that can fail before any process starts (one message instead of one per process)."""
    if config.distributed.strategy == "deepspeed":
        require_deepspeed()


def launch_local(nproc: int, argv: list[str]) -> int:
    """Re-run this command as `nproc` data-parallel processes on this machine (gloo on CPU); its exit status. Each
    rank prints its own error; this adds which rank failed first."""
    from tunesmith.cli.main import main_with_argv
    from tunesmith.train.launch import LaunchStopped, describe_exit, first_failure, launch

    try:
        failures = launch(nproc, main_with_argv, argv)
    except LaunchStopped:
        return 130
    if not failures:
        return 0
    first = first_failure(failures)
    print(f"rank {first.rank} of {nproc} failed first ({describe_exit(first.code)}); the others were stopped",
          file=sys.stderr)
    return first.code if first.code is not None and first.code > 0 else 1
