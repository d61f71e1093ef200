"""Speed levers tried on tunesmith from inside a benchmark process, before anyone changes the source for them.

Each patch changes tunesmith in the process that applies it and nowhere else, so one lever can be measured alone
against the code as it is (`lever_ab.py --patch NAME`, `lora_vs_trl.py --tunesmith-patch NAME`). A lever that
wins becomes a change in the source; its patch is then removed from here.
"""

from __future__ import annotations

import torch


def _adamw_with(**options):
    """torch.optim.AdamW with `options` forced, in place of the class the training loop builds."""
    original = torch.optim.AdamW

    class PatchedAdamW(original):
        def __init__(self, params, *args, **kwargs):
            super().__init__(params, *args, **{**kwargs, **options})

    def apply() -> None:
        torch.optim.AdamW = PatchedAdamW  # train/loop.py looks the class up on torch.optim when it builds it

    return apply


def _lora_addmm() -> None:
    """PEFT's LoRA Linear as `addmm(base output, A(dropout(x)), B^T, alpha=scaling)`: the adapter's second product,
    its scaling and the residual add in one call (forward and backward), instead of three ops over [tokens, out]."""
    from peft.tuners.lora import layer

    original = layer.Linear.forward

    def forward(self, x, *args, **kwargs):
        active = self.active_adapters
        if (args or kwargs or self.disable_adapters or self.merged or len(active) != 1 or active[0] not in self.lora_A
                or active[0] in self.lora_variant or self.lora_B[active[0]].bias is not None):
            return original(self, x, *args, **kwargs)  # anything but plain single-adapter LoRA: PEFT's own path
        name = active[0]
        result = self.base_layer(x)
        lora_a, lora_b = self.lora_A[name], self.lora_B[name]
        reduced = lora_a(self.lora_dropout[name](self._cast_input_dtype(x, lora_a.weight.dtype)))
        flat = torch.addmm(result.reshape(-1, result.shape[-1]), reduced.reshape(-1, reduced.shape[-1]),
                           lora_b.weight.t(), alpha=self.scaling[name])
        return flat.view(result.shape).to(result.dtype)

    layer.Linear.forward = forward


def _plain_lora(module) -> bool:
    """A PEFT LoRA Linear doing nothing but base + B(A(x)) * scaling with one adapter, no dropout, no biases."""
    from peft.tuners.lora import layer
    from torch import nn

    if type(module) is not layer.Linear or module.disable_adapters or module.merged:
        return False
    active = module.active_adapters
    return (len(active) == 1 and active[0] in module.lora_A and active[0] not in module.lora_variant
            and type(module.lora_dropout[active[0]]) is nn.Identity and module.base_layer.bias is None
            and module.lora_B[active[0]].bias is None)


def _fused_frozen(owner, modules) -> torch.Tensor:
    """The modules' frozen weights as one [sum of outputs, inputs] tensor, made once: each weight then becomes a
    view into it, so it costs no memory (made again if a weight's storage is swapped, as frozen_precision does)."""
    weights = [m.base_layer.weight for m in modules]
    kept = owner.__dict__.get("_fused_frozen")
    if kept is not None and [w.data_ptr() for w in weights] == kept[1]:
        return kept[0]
    fused, start = torch.cat([w.detach() for w in weights]), 0
    for weight in weights:
        weight.data = fused[start:start + weight.shape[0]]
        start += weight.shape[0]
    owner.__dict__["_fused_frozen"] = (fused, [w.data_ptr() for w in weights])
    return fused


def _shared_products(owner, x, modules) -> list | None:
    """Each module's output for the same input `x`: the frozen weights as one product and the LoRA A weights as
    another (their concatenation: one read of x, one matmul each), then each adapter's B; None where any module is
    not plain LoRA."""
    import torch.nn.functional as F

    if not all(_plain_lora(m) for m in modules) or any(m.base_layer.weight.requires_grad for m in modules):
        return None
    names = [m.active_adapters[0] for m in modules]
    base = F.linear(x, _fused_frozen(owner, modules))
    reduced = F.linear(x.to(modules[0].lora_A[names[0]].weight.dtype),
                       torch.cat([m.lora_A[n].weight for m, n in zip(modules, names)]))
    outputs, start, low = [], 0, 0
    for module, name in zip(modules, names):
        width, rank = module.base_layer.out_features, module.lora_A[name].out_features
        adapter = module.lora_B[name](reduced[..., low:low + rank]) * module.scaling[name]
        outputs.append((base[..., start:start + width] + adapter).to(base.dtype))
        start, low = start + width, low + rank
    return outputs


def _shared_input() -> None:
    """q/k/v and gate/up of each Llama block read the same hidden states: their frozen weights as one product and
    their LoRA A weights as one product, instead of one of each per projection (plain LoRA at dropout 0)."""
    from peft.tuners.lora import layer
    from transformers.models.llama import modeling_llama as llama

    lora_forward, attention_forward = layer.Linear.forward, llama.LlamaAttention.forward

    def forward(self, x, *args, **kwargs):
        ready = self.__dict__.pop("_shared_output", None)
        if ready is not None and ready[0] is x and not args and not kwargs:
            return ready[1]
        return lora_forward(self, x, *args, **kwargs)

    def attention(self, hidden_states, *args, **kwargs):
        projections = (self.q_proj, self.k_proj, self.v_proj)
        outputs = _shared_products(self, hidden_states, projections)
        for module, output in zip(projections, outputs or ()):
            module.__dict__["_shared_output"] = (hidden_states, output)
        try:
            return attention_forward(self, hidden_states, *args, **kwargs)
        finally:
            for module in projections:
                module.__dict__.pop("_shared_output", None)

    def mlp(self, x):
        outputs = _shared_products(self, x, (self.gate_proj, self.up_proj))
        if outputs is None:
            return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))
        return self.down_proj(self.act_fn(outputs[0]) * outputs[1])

    layer.Linear.forward = forward
    llama.LlamaAttention.forward = attention
    llama.LlamaMLP.forward = mlp


def _compile_blocks(dynamic: bool = True, bucket: int | None = None):
    return lambda: _compile_blocks_with(dynamic, bucket)


def _compile_blocks_with(dynamic: bool, bucket: int | None) -> None:
    """Each decoder block through torch.compile (inductor; with dynamic shapes one graph serves every batch length,
    with `bucket` batches are padded to few lengths; blocks share their code and their weights are graph inputs, so
    every block uses the same graphs), so its element-wise work, casts
    and dropout run as fused loops between the matrix products. LoRA dropout stays nn.Dropout, which inductor fuses
    (with its own random stream); the blocks are compiled after the activation-memory probe, whose saved-tensor
    hooks dynamo cannot trace."""
    from tunesmith.tasks.causal_lm import run

    choose = run.choose_gradient_checkpointing

    def choose_then_compile(option, model, *args, **kwargs):
        choice = choose(option, model, *args, **kwargs)
        for module in model.modules():
            if type(module).__name__.endswith("DecoderLayer"):
                module.compile(dynamic=dynamic)
        return choice

    run.use_cpu_dropout = lambda model, **options: 0
    if bucket:  # static shapes: batches padded to a multiple of `bucket` tokens, so few shapes recur
        from tunesmith.data import collate

        init = collate.PaddingCollator.__init__
        collate.PaddingCollator.__init__ = lambda self, pad, multiple=None: init(self, pad, multiple or bucket)
    run.choose_gradient_checkpointing = choose_then_compile


def _malloc_keeps_freed_memory() -> None:
    """glibc serves allocations above its mmap threshold (128 KiB at first, rising to at most 32 MiB as such blocks
    are freed) with fresh mmaps, and gives the heap's free top back past the trim threshold: each new tensor of
    that size then page-faults its memory in again, zeroed by the kernel. Thresholds at their maximum keep freed
    blocks in the heap for the next step's tensors of the same size."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 32 << 20)
    libc.mallopt(m_trim_threshold, 1 << 30)


def _flush_denormals() -> None:
    """Subnormal floats flushed to zero (FTZ and DAZ in the calling thread's MXCSR only: OpenMP workers keep theirs).
    Intel cores take a microcode assist per subnormal operand or result; a log-softmax over a 49k vocabulary makes
    them (exp of logits far below the row's maximum)."""
    torch.set_flush_denormal(True)


PATCHES = {
    "flush_denormals": _flush_denormals,
    "malloc_keeps_freed_memory": _malloc_keeps_freed_memory,
    "compile_blocks": _compile_blocks(),
    "compile_blocks_static32": _compile_blocks(dynamic=False, bucket=32),
    # torch's AdamW runs a Python loop over the parameters on CPU by default (foreach is CUDA-only by default);
    # the fused kernel updates all of them in one call per dtype and device, as TRL's adamw_torch_fused does.
    "adamw_fused": _adamw_with(fused=True),
    "adamw_foreach": _adamw_with(foreach=True),
    "lora_addmm": _lora_addmm,
    "shared_input": _shared_input,
}


def apply(names: list[str]) -> None:
    unknown = [name for name in names if name not in PATCHES]
    if unknown:
        raise ValueError(f"unknown patch {unknown[0]!r}; known: {', '.join(PATCHES)}")
    for name in names:
        PATCHES[name]()
