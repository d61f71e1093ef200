"""Micro-benchmarks of single pieces of a LoRA step, in CPU seconds of this process (steady on a shared machine).

    OMP_NUM_THREADS=1 python benchmarks/llm/micro.py adamw      # AdamW step: for-loop (CPU default), foreach, fused
    OMP_NUM_THREADS=1 python benchmarks/llm/micro.py dropout    # fwd + bwd: nn.Dropout, CpuDropout, no dropout
    OMP_NUM_THREADS=1 python benchmarks/llm/micro.py head-cast  # casting the tied lm_head to bf16 once
    OMP_NUM_THREADS=1 python benchmarks/llm/micro.py mask       # a dropout mask: drawn as bool or bytes; where or *
    OMP_NUM_THREADS=1 python benchmarks/llm/micro.py attention-mask  # scores scaled and masked: two ops or one

Shapes are the embedded SmolLM2-135M's with LoRA r=16 on all linear layers: 420 adapter tensors (4.9M parameters),
activations of a short-row batch (8 x 95 tokens) at the 576- and 1536-wide layer inputs. To compare with another
version of tunesmith, run the same command with PYTHONPATH=that/src. Results go to benchmarks/results/micro-*.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # as a script, only this file's folder would be on sys.path

import torch  # noqa: E402

from benchmarks.common import machine  # noqa: E402
from benchmarks.common.report import write_results  # noqa: E402

HIDDEN, INTERMEDIATE, KV, LAYERS, RANK = 576, 1536, 192, 30, 16
# (out, in) of the 7 adapted projections of one decoder layer: q, k, v, o, gate, up, down.
PROJECTIONS = ((HIDDEN, HIDDEN), (KV, HIDDEN), (KV, HIDDEN), (HIDDEN, HIDDEN), (INTERMEDIATE, HIDDEN),
               (INTERMEDIATE, HIDDEN), (HIDDEN, INTERMEDIATE))
TOKENS = (8, 95)
VOCAB = 49152


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Micro-benchmarks of pieces of a LoRA step (CPU seconds).")
    parser.add_argument("piece", choices=sorted(PIECES))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    import tunesmith  # where it comes from: this checkout, or another version through PYTHONPATH

    info = machine.describe(torch.device("cpu"))
    print(machine.summary_line(info), flush=True)
    figures = PIECES[args.piece](args.repeats)
    for name, figure in figures.items():
        print(f"{name}: {figure}")
    stamp = datetime.now().strftime("%Y%m%d-%H%M")
    output = args.output or REPO / "benchmarks" / "results" / f"micro-{args.piece}-cpu-{stamp}.json"
    write_results(output, {
        "benchmark": f"llm/micro {args.piece}",
        "created": datetime.now().isoformat(timespec="seconds"),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "tunesmith": str(Path(tunesmith.__file__).parent),
        "machine": {**info, "load_average_after": machine.load_average()},
        "figures": figures,
    })
    print(f"results: {output}")


def adamw(repeats: int) -> dict:
    """One AdamW step (and zero_grad) over the LoRA tensors, per implementation; whether each ends where the
    for-loop does after `repeats` steps."""
    shapes = [shape for _ in range(LAYERS) for out, inp in PROJECTIONS for shape in ((RANK, inp), (out, RANK))]
    variants = {"for-loop (CPU default)": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    states = {}
    for name, options in variants.items():
        generator = torch.Generator().manual_seed(0)
        params = [torch.randn(shape, generator=generator).requires_grad_() for shape in shapes]
        grads = [torch.randn(shape, generator=generator) * 1e-3 for shape in shapes]
        states[name] = params, grads, torch.optim.AdamW(params, lr=2e-4, weight_decay=0.0, **options)

    def step(name: str) -> float:
        params, grads, optimizer = states[name]
        for param, grad in zip(params, grads):
            param.grad = grad.clone()
        started = time.process_time()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.process_time() - started

    seconds = _alternating(list(variants), step, repeats)
    reference = states["for-loop (CPU default)"][0]
    return {
        name: {
            "ms": round(statistics.median(seconds[name]) * 1e3, 2),
            "same_as_for_loop": all(torch.equal(a, b) for a, b in zip(reference, states[name][0])),
            "max_abs_difference": max((a - b).abs().max().item() for a, b in zip(reference, states[name][0])),
        }
        for name in variants
    }


def dropout(repeats: int) -> dict:
    """Forward + backward of LoRA dropout (p=0.05) on the two layer-input widths, less the same with no dropout."""
    from tunesmith.methods.cpu_dropout import CpuDropout

    modules = {"none": torch.nn.Identity(), "nn.Dropout": torch.nn.Dropout(0.05), "CpuDropout": CpuDropout(0.05)}
    figures = {}
    for width in (HIDDEN, INTERMEDIATE):
        x = torch.randn(*TOKENS, width)

        def run(name: str) -> float:
            leaf = x.clone().requires_grad_()
            started = time.process_time()
            out = modules[name](leaf) * 1.0  # * 1.0: a graph to backpropagate through even without dropout
            out.backward(torch.ones_like(out))
            return time.process_time() - started

        seconds = _alternating(list(modules), run, repeats)
        base = statistics.median(seconds["none"])
        figures[f"[{TOKENS[0]}, {TOKENS[1]}, {width}]"] = {
            name: round((statistics.median(seconds[name]) - base) * 1e3, 2) for name in modules if name != "none"
        }
    return {shape: {f"{name} ms": ms for name, ms in values.items()} for shape, values in figures.items()}


def head_cast(repeats: int) -> dict:
    """What frozen_in_compute_dtype saves per step for a tied frozen lm_head under bf16: one fp32 -> bf16 cast."""
    weight = torch.randn(VOCAB, HIDDEN)

    def cast(_: str) -> float:
        started = time.process_time()
        weight.to(torch.bfloat16)
        return time.process_time() - started

    seconds = _alternating(["cast"], cast, repeats)
    return {f"[{VOCAB}, {HIDDEN}] fp32 -> bf16": {"ms": round(statistics.median(seconds["cast"]) * 1e3, 2)}}


def mask(repeats: int) -> dict:
    """LoRA dropout's mask at the two layer-input widths, in fp32 and bf16: written by the comparison as bool or as
    uint8 bytes (then viewed as bool), and applied by `where(keep, x, 0)`, by multiplying with the bytes, or by
    tunesmith's apply_keep (methods/keep_mask.py); whether the applications give equal tensors."""
    from tunesmith.methods.keep_mask import apply_keep

    figures = {}
    for width in (HIDDEN, INTERMEDIATE):
        generator = torch.Generator().manual_seed(0)
        uniforms = torch.randint(0, 1 << 15, (*TOKENS, width), dtype=torch.int16, generator=generator)
        keep = uniforms >= 1638  # p = 0.05 in 15-bit levels
        for dtype in (torch.float32, torch.bfloat16):
            x = torch.randn(*TOKENS, width, generator=generator).to(dtype)
            pieces = {
                "draw as bool": lambda: uniforms >= 1638,
                "draw as uint8": lambda: torch.ge(uniforms, 1638, out=torch.empty(uniforms.shape, dtype=torch.uint8)),
                "apply with where": lambda: torch.where(keep, x, 0),
                "apply with * uint8": lambda: x * keep.view(torch.uint8),
                "apply with apply_keep": lambda: apply_keep(x, keep),
            }

            def run(name: str) -> float:
                started = time.process_time()
                pieces[name]()
                return time.process_time() - started

            seconds = _alternating(list(pieces), run, repeats)
            figures[f"[{TOKENS[0]}, {TOKENS[1]}, {width}] {str(dtype).removeprefix('torch.')}"] = {
                **{f"{name} ms": round(statistics.median(seconds[name]) * 1e3, 3) for name in pieces},
                "same values": torch.equal(torch.where(keep, x, 0), x * keep.view(torch.uint8))
                and torch.equal(torch.where(keep, x, 0), apply_keep(x, keep)),
            }
    return figures


def attention_mask(repeats: int) -> dict:
    """Forward + backward of scaling and masking one layer's attention scores ([8, 9, 95, 95], causal and padded
    rows), in fp32 and bf16: as two autograd ops (`* scale`, then `masked_fill` with the dtype's minimum), or as
    the one pass tasks/causal_lm/cpu_attention.py makes (an additive mask, built once per forward pass and so left
    out here, added with the scale as alpha); whether both give the same scores and gradients."""
    batch, length = TOKENS
    heads, scale = 9, 0.125
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(length // 2, length + 1, (batch,), generator=generator)
    keep = (torch.arange(length) < lengths[:, None])[:, None, None, :] & torch.ones(length, length).bool().tril()
    figures = {}
    for dtype in (torch.float32, torch.bfloat16):
        scores = torch.randn(batch, heads, length, length, generator=generator).to(dtype)
        # Zero where masked, as the softmax's backward gives it (a masked score's probability is 0).
        grad = torch.randn(scores.shape, generator=generator).to(dtype).masked_fill(~keep, 0)
        lowest = torch.finfo(dtype).min
        bias = torch.zeros(keep.shape, dtype=dtype).masked_fill_(~keep, lowest)
        pieces = {
            "scale, then masked_fill": lambda s: (s * scale).masked_fill(~keep, lowest),
            "additive mask, one pass": lambda s: torch.add(bias, s, alpha=scale),
        }
        outputs = {}

        def run(name: str) -> float:
            leaf = scores.clone().requires_grad_()
            started = time.process_time()
            out = pieces[name](leaf)
            out.backward(grad)
            seconds = time.process_time() - started
            outputs[name] = out.detach(), leaf.grad
            return seconds

        seconds = _alternating(list(pieces), run, repeats)
        (a, grad_a), (b, grad_b) = outputs.values()
        figures[f"[{batch}, {heads}, {length}, {length}] {str(dtype).removeprefix('torch.')}"] = {
            **{f"{name} ms": round(statistics.median(seconds[name]) * 1e3, 3) for name in pieces},
            "same values": torch.equal(a, b) and torch.equal(grad_a, grad_b),
        }
    return figures


def _alternating(names: list[str], run, repeats: int) -> dict[str, list[float]]:
    """run(name) for every name, `repeats` rounds, the order reversed every other round; after one warm-up round."""
    for name in names:
        run(name)
    seconds = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            seconds[name].append(run(name))
    return seconds


PIECES = {"adamw": adamw, "dropout": dropout, "head-cast": head_cast, "mask": mask, "attention-mask": attention_mask}


if __name__ == "__main__":
    main()
