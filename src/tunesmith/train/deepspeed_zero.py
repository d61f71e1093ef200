"""DeepSpeed ZeRO (distributed.strategy: deepspeed) through accelerate, on GPUs and on CPU (gloo).

accelerate hands the task and optimizer to a DeepSpeed engine, which then owns gradient reduction, clipping and
the optimizer step (run at the end of each accumulation window, see `micro_batch`). Under ZeRO the fp32 master
weights and the optimizer state are partitioned across ranks, so reading the trained tensors is a collective
(`full_trainable_state`) and checkpoints keep DeepSpeed's own per-rank optimizer files (`save_engine_state`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from tunesmith.errors import ConfigError
from tunesmith.train.fsdp import PREFIX

ENGINE_DIR = "deepspeed"  # inside a checkpoint folder
TAG = "zero"


def quiet_on_cpu() -> None:
    """Without CUDA, name DeepSpeed's accelerator, or its import (by accelerate or peft too, whatever the strategy)
    warns that it found no GPU."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def require_deepspeed() -> None:
    quiet_on_cpu()
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        raise ConfigError("distributed.strategy: deepspeed needs the deepspeed package: pip install deepspeed") from None


def skip_inference_all_reduce_build() -> None:
    """Spare each fresh machine DeepSpeed's g++ build of its shared-memory all-reduce (~50 s of a CPU core here), done
    when its process group starts: only its tensor-parallel inference calls that kernel (`inference_all_reduce`);
    ZeRO training reduces through torch.distributed (gloo on CPU, NCCL on GPUs)."""
    import importlib

    # By module name: the attribute deepspeed.comm.torch is the torch package (deepspeed.comm imports it).
    backend = importlib.import_module("deepspeed.comm.torch")
    backend.build_shm_op = lambda: None  # TorchBackend then keeps torch.distributed's all_reduce


def deepspeed_plugin(config, world_size: int):
    from accelerate import DeepSpeedPlugin

    skip_inference_all_reduce_build()

    plugin = DeepSpeedPlugin(zero_stage=config.distributed.zero_stage,
                             gradient_clipping=config.training.max_grad_norm or 0.0,
                             # The loop accumulates itself and marks the last micro-batch of a window.
                             gradient_accumulation_steps=1,
                             # Load whole weights and partition them in prepare(), as under FSDP: the method,
                             # the memory probe and the base scoring need a whole model before training.
                             zero3_init_flag=False)
    # accelerate takes this from a prepared DataLoader; the loop prepares none. DeepSpeed only uses it for
    # its batch-size bookkeeping (micro-batches here vary in size when packing).
    plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = max(1, -(-config.training.examples_per_batch // world_size))
    return plugin


def accelerator_kwargs() -> dict:
    """accelerate selects DeepSpeed only when not told `cpu=True`; on CPU the processes talk over gloo."""
    if torch.cuda.is_available():
        return {}
    from accelerate.utils import InitProcessGroupKwargs

    return {"cpu": False, "kwargs_handlers": [InitProcessGroupKwargs(backend="gloo")]}


def load_whole_weights() -> None:
    """Let transformers load whole weights under ZeRO-3 (partitioned later by prepare()).

    accelerate registers its DeepSpeed config with transformers even when told not to partition at load time
    (zero3_init_flag=False); transformers would then load every model partitioned, which the method, the memory
    probe and the base scoring cannot use.
    """
    from transformers.integrations import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()


@contextmanager
def micro_batch(accelerator, last: bool):
    """Tell accelerate's DeepSpeed backward whether this micro-batch ends the window: only then does the engine
    reduce (ZeRO-1), clip and step the optimizer."""
    state = accelerator.gradient_state
    state._set_sync_gradients(last)
    try:
        yield
    finally:
        state._set_sync_gradients(True)


def full_trainable_state(engine) -> dict[str, torch.Tensor]:
    """The trainable tensors as the fp32 master weights, whole, on rank 0; the others get an empty dict
    (collective: every rank calls it, each tensor is assembled on every rank)."""
    import torch.distributed as dist
    from deepspeed.utils import safe_get_full_fp32_param

    keep = dist.get_rank() == 0
    state = {}
    for name, param in engine.module.named_parameters():
        if param.requires_grad:
            whole = safe_get_full_fp32_param(param)
            if keep:
                state[name[len(PREFIX):]] = whole.detach().to("cpu", torch.float32).clone()
    return state


def save_engine_state(engine, folder: Path) -> None:
    """DeepSpeed's optimizer partitions and trained weights into `folder` (collective; rank files side by side)."""
    engine.save_checkpoint(str(folder / ENGINE_DIR), tag=TAG, save_latest=False, exclude_frozen_parameters=True)


def load_engine_state(engine, folder: Path, world_size: int) -> None:
    """Restore what `save_engine_state` wrote (collective). The frozen base comes from the model source."""
    engine_dir = folder / ENGINE_DIR
    written_by = len(list((engine_dir / TAG).glob("*optim_states.pt")))
    if written_by != world_size:
        raise ConfigError(f"--resume: {folder} was written by {written_by} DeepSpeed processes; ZeRO resumes only "
                          f"with the same number (--nproc {written_by}), not {world_size}")
    engine.load_checkpoint(str(engine_dir), tag=TAG, load_module_strict=False, load_lr_scheduler_states=False)


PARTITIONED = {1: "optimizer state", 2: "optimizer state and gradients", 3: "optimizer state, gradients and weights"}


def sharding_summary(engine: nn.Module, accelerator) -> str:
    """One line, e.g. 'DeepSpeed ZeRO-3: optimizer state, gradients and weights partitioned over 2 processes; rank 0
    holds 50.0% of 1,234 weights'."""
    stage = engine.zero_optimization_stage()
    held = total = 0
    for p in engine.module.parameters():
        whole = getattr(p, "ds_numel", p.numel())  # ZeRO-3 keeps only this rank's partition in ds_tensor
        total += whole
        held += p.ds_tensor.numel() if hasattr(p, "ds_tensor") else whole
    return (f"DeepSpeed ZeRO-{stage}: {PARTITIONED[stage]} partitioned over {accelerator.num_processes} processes; "
            f"rank {accelerator.process_index} holds {100 * held / max(total, 1):.1f}% of {total:,} weights")
