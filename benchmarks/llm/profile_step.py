"""Where a tunesmith LoRA training step spends its time: torch.profiler over a few steps, grouped by kind of work.

    python benchmarks/llm/profile_step.py --workload short --steps 4           # after one unprofiled warm-up step
    python benchmarks/llm/profile_step.py --workload cooking --tunesmith-patch adamw_fused
    python benchmarks/llm/profile_step.py --table A.json B.json                # profiles side by side (before/after)

The run is lora_vs_trl.py's tunesmith run (same model, LoRA, settings and workloads), through the public
`tunesmith.run.run`, stopped after --warmup + --steps optimizer steps; the profiler records steps warmup+1 .. end on
the training thread. Self time (an op's time minus its children's, on the training thread; on a GPU the device time)
goes to one group:

    matrix products   aten::mm/bmm/addmm/matmul/linear/baddbmm, wherever they run (attention and loss included)
    optimizer         everything else inside AdamW's step and zero_grad and the gradient clipping
    dropout           everything else inside a Dropout module's forward or its backward (mask drawing, masking)
    attention         everything else inside the attention function or its backward (softmax, masking, copies)
    cross-entropy     everything else inside the fused lm_head + cross-entropy (log-softmax, gradient)
    casts/copies      aten::copy_/_to_copy/to/clone/contiguous elsewhere
    allocation        aten::empty*/zeros*/ones*/full elsewhere
    element-wise      add/mul/div/silu/pow/rsqrt/mean/... elsewhere (norms, RoPE, residuals, activations, reductions)
    other ops         views, indexing, embedding, autograd bookkeeping
    outside ops       the rest of the wall time: Python, batch collation, the autograd engine between ops

"Inside a backward" is found from the profiler's sequence numbers: a backward node carries the number of the forward
op that made it. The profiler adds its own overhead per op, so many small ops look somewhat larger than they are.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # as a script, only this file's folder would be on sys.path

import torch  # noqa: E402

from benchmarks.common import machine  # noqa: E402
from benchmarks.common.llm_job import add_job_options, job_settings  # noqa: E402
from benchmarks.common.report import write_results  # noqa: E402
from benchmarks.llm import lora_vs_trl, patches  # noqa: E402

GROUPS = ("matrix products", "element-wise", "casts/copies", "allocation", "attention", "cross-entropy", "dropout",
          "optimizer", "other ops", "outside ops")
MATMUL = {"aten::mm", "aten::bmm", "aten::addmm", "aten::matmul", "aten::linear", "aten::baddbmm", "aten::addbmm",
          "aten::_mkldnn_matmul", "aten::mkldnn_matmul"}
CASTS = {"aten::copy_", "aten::_to_copy", "aten::to", "aten::clone", "aten::contiguous", "aten::_copy_from",
         "aten::_copy_from_and_resize"}
ALLOCATION = {"aten::empty", "aten::empty_strided", "aten::empty_like", "aten::zeros", "aten::zeros_like",
              "aten::ones", "aten::ones_like", "aten::full", "aten::full_like", "aten::new_empty",
              "aten::new_empty_strided", "aten::new_zeros", "aten::resize_"}
ELEMENTWISE = {
    "aten::add", "aten::add_", "aten::sub", "aten::sub_", "aten::mul", "aten::mul_", "aten::div", "aten::div_",
    "aten::neg", "aten::pow", "aten::rsqrt", "aten::sqrt", "aten::exp", "aten::exp_", "aten::log", "aten::silu",
    "aten::silu_backward", "aten::sigmoid", "aten::gelu", "aten::gelu_backward", "aten::tanh", "aten::cos",
    "aten::sin", "aten::mean", "aten::sum", "aten::where", "aten::masked_fill", "aten::masked_fill_", "aten::fill_",
    "aten::zero_", "aten::cat", "aten::threshold_backward", "aten::clamp", "aten::clamp_min", "aten::maximum",
    "aten::ge", "aten::lt", "aten::gt", "aten::eq", "aten::ne", "aten::bitwise_and", "aten::bitwise_not",
    "aten::addcmul_", "aten::addcdiv_", "aten::lerp_", "aten::reciprocal", "aten::abs", "aten::_softmax",
    "aten::_log_softmax", "aten::_softmax_backward_data", "aten::_log_softmax_backward_data", "aten::cumsum",
}
# record_function labels this script puts around the regions it groups by (the optimizer's are torch's own).
OPTIMIZER_PREFIXES = ("Optimizer.step#", "Optimizer.zero_grad#")
REGIONS = {"tunesmith/clip": "optimizer", "tunesmith/dropout": "dropout", "tunesmith/attention": "attention",
           "tunesmith/cross-entropy": "cross-entropy"}
BACKWARD = "autograd::engine::evaluate_function: "


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.table:
        print(side_by_side([json.loads(Path(path).read_text()) for path in args.table]))
        return
    profile = run_profiled(args)
    stamp = datetime.now().strftime("%Y%m%d-%H%M")
    results = REPO / "benchmarks" / "results"
    output = args.output or results / f"profile_step-{args.workload}-{profile['device']}-{stamp}.json"
    write_results(output, profile)
    print(f"\n{markdown(profile)}\n\nresults: {output}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="torch.profiler over tunesmith LoRA steps, grouped by kind of work.")
    parser.add_argument("--steps", type=int, default=4, help="profiled optimizer steps")
    parser.add_argument("--warmup", type=int, default=1, help="unprofiled optimizer steps before them (at least 1)")
    add_job_options(parser, ["workload", "batch_size", "max_length", "precision", "seed", "tunesmith_set",
                             "tunesmith_patch"],
                    choices={"workload": lora_vs_trl.WORKLOADS, "tunesmith_patch": sorted(patches.PATCHES)})
    parser.add_argument("--shapes", action="store_true",
                        help="record input shapes: the results add the matrix products' time by shape")
    parser.add_argument("--label", help="a name for this profile in --table (default: its settings)")
    parser.add_argument("--output", type=Path, help="results JSON (default benchmarks/results/profile_step-...)")
    parser.add_argument("--table", nargs="+", type=Path, metavar="JSON",
                        help="print the group tables of earlier profiles side by side, and nothing else")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1 (the profiler starts at the end of a step)")
    return args


# -- the profiled run ----------------------------------------------------------------------------------------
def run_profiled(args: argparse.Namespace) -> dict:
    import tunesmith.run as tunesmith_run

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    workdir = Path(tempfile.mkdtemp(prefix="profile_step-"))
    job = lora_vs_trl.make_job(job_settings(args, max_test_examples=0), workdir)  # profiles training only
    print(f"measuring the machine ({device.type}) ...", flush=True)
    info = machine.describe(device)
    print(machine.summary_line(info), flush=True)
    patches.apply(job["tunesmith_patch"])
    label_regions()
    total = args.warmup + args.steps
    config = lora_vs_trl.tunesmith_config(
        {**job, "tunesmith_set": [*job["tunesmith_set"], f"training.max_steps={total}"]}, workdir / "run"
    )
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    profiler = torch.profiler.profile(activities=activities, record_shapes=args.shapes)
    window = {}

    def on_step_end(state) -> None:
        # The loop calls this after each step's logging; the window is steps warmup+1 .. total.
        if state.step == args.warmup:
            profiler.start()
            window["start"], window["cpu_start"] = time.perf_counter(), time.process_time()
        elif state.step == total:
            if device.type == "cuda":
                torch.cuda.synchronize()
            window["seconds"] = time.perf_counter() - window["start"]
            window["cpu_seconds"] = time.process_time() - window["cpu_start"]
            profiler.stop()

    tunesmith_run.run(config, overwrite=True, on_step_end=on_step_end)
    events = profiler.events()
    groups, ops = group_times(events, window["seconds"] * 1e6, device.type == "cuda")
    per_step = lambda microseconds: microseconds / 1e3 / args.steps  # noqa: E731 -- ms per step
    shapes = matmul_shapes(events, device.type == "cuda") if args.shapes else {}
    return {
        "benchmark": "llm/profile_step",
        "created": datetime.now().isoformat(timespec="seconds"),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "label": args.label or _label(args, job),
        "device": device.type,
        "machine": info,
        "settings": {**job, "warmup_steps": args.warmup, "profiled_steps": args.steps},
        "step_ms": round(per_step(window["seconds"] * 1e6), 1),
        "step_cpu_ms": round(per_step(window["cpu_seconds"] * 1e6), 1),  # all threads of the process
        "load_average_after": machine.load_average(),
        "groups_ms_per_step": {group: round(per_step(groups[group]), 2) for group in GROUPS},
        "ops": [
            {"group": group, "op": name, "calls_per_step": calls / args.steps, "ms_per_step": round(per_step(us), 3)}
            for (group, name), (calls, us) in sorted(ops.items(), key=lambda item: -item[1][1])
        ],
        "matmul_shapes": [
            {"op": name, "input_shapes": shape, "calls_per_step": calls / args.steps,
             "ms_per_step": round(per_step(us), 3)}
            for (name, shape), (calls, us) in sorted(shapes.items(), key=lambda item: -item[1][1])
        ],
    }


def _label(args: argparse.Namespace, job: dict) -> str:
    levers = [*args.tunesmith_set, *args.tunesmith_patch]
    return f"{args.workload}, {job['precision']}" + (f", {' '.join(levers)}" if levers else "")


def label_regions() -> None:
    """Put a record_function label around clipping, dropout, attention and the fused cross-entropy (this process)."""
    from accelerate import Accelerator
    from transformers import AttentionInterface

    import tunesmith.tasks.causal_lm.loss as loss
    from tunesmith.methods.cpu_dropout import CpuDropout
    from tunesmith.tasks.causal_lm import cpu_attention

    Accelerator.clip_grad_norm_ = _labelled("tunesmith/clip", Accelerator.clip_grad_norm_)
    for dropout in (CpuDropout, torch.nn.Dropout):
        dropout.forward = _labelled("tunesmith/dropout", dropout.forward)
    for name in ("sdpa", cpu_attention.NAME):
        AttentionInterface.register(name, _labelled("tunesmith/attention", AttentionInterface._global_mapping[name]))
    loss.linear_cross_entropy = _labelled("tunesmith/cross-entropy", loss.linear_cross_entropy)
    loss._checkpointed_cross_entropy = _labelled("tunesmith/cross-entropy", loss._checkpointed_cross_entropy)


def _labelled(label: str, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with torch.profiler.record_function(label):
            return function(*args, **kwargs)

    return wrapper


# -- grouping ------------------------------------------------------------------------------------------------
def group_times(events, window_us: float, cuda: bool) -> tuple[dict, dict]:
    """({group: self microseconds}, {(group, op): (calls, self microseconds)}) on the training thread."""
    thread = next(e.thread for e in events if e.name.startswith(OPTIMIZER_PREFIXES))
    mine = [e for e in events if e.thread == thread]
    forward_region = {}  # sequence number -> region of the forward op that made the backward node
    for event in mine:
        if event.sequence_nr >= 0 and not event.name.startswith(BACKWARD):
            region = _region(event, forward_region)
            if region:
                forward_region.setdefault(event.sequence_nr, region)
    groups, ops = defaultdict(float), defaultdict(lambda: [0, 0.0])
    for event in mine:
        if _is_label(event.name):
            continue  # its self time is Python inside the region: "outside ops"
        group = _group(event, _region(event, forward_region))
        spent = event.self_device_time_total if cuda else event.self_cpu_time_total
        groups[group] += spent
        ops[(group, event.name)][0] += 1
        ops[(group, event.name)][1] += spent
    groups["outside ops"] = max(0.0, window_us - sum(groups.values()))  # on a GPU: time the device sat idle
    return groups, {key: tuple(value) for key, value in ops.items()}


def matmul_shapes(events, cuda: bool) -> dict:
    """{(op, input shapes): (calls, self microseconds)} of the matrix products: which products the time goes to."""
    shapes = defaultdict(lambda: [0, 0.0])
    for event in events:
        if event.name in MATMUL:
            key = (event.name, str(event.input_shapes))
            shapes[key][0] += 1
            shapes[key][1] += event.self_device_time_total if cuda else event.self_cpu_time_total
    return {key: tuple(value) for key, value in shapes.items()}


def _region(event, forward_region: dict) -> str | None:
    """The labelled region `event` runs in: a label among its ancestors, or the forward region of its backward."""
    node = event
    while node is not None:
        if node.name.startswith(OPTIMIZER_PREFIXES):
            return "optimizer"
        if node.name in REGIONS:
            return REGIONS[node.name]
        if node.name.startswith(BACKWARD):
            return forward_region.get(node.sequence_nr)
        node = node.cpu_parent
    return None


def _group(event, region: str | None) -> str:
    name = event.name
    if name in MATMUL:
        return "matrix products"
    if region:
        return region
    if name in CASTS:
        return "casts/copies"
    if name in ALLOCATION:
        return "allocation"
    if name in ELEMENTWISE:
        return "element-wise"
    if name in {"aten::random_", "aten::bernoulli_", "aten::uniform_", "aten::native_dropout", "aten::dropout"}:
        return "dropout"
    return "other ops"


def _is_label(name: str) -> bool:
    return name in REGIONS or name.startswith(OPTIMIZER_PREFIXES) or name.startswith("ProfilerStep")


# -- tables --------------------------------------------------------------------------------------------------
def markdown(profile: dict, top: int = 12) -> str:
    """The group table (ms per step, share of the step) and the largest ops."""
    step = profile["step_ms"]
    lines = [f"{profile['label']}: {step:.0f} ms per step ({profile['step_cpu_ms']:.0f} ms of CPU time) over "
             f"{profile['settings']['profiled_steps']} steps",
             "", "| group | ms per step | share |", "|---|---:|---:|"]
    for group, ms in profile["groups_ms_per_step"].items():
        lines.append(f"| {group} | {ms:.1f} | {ms / step:.1%} |")
    lines += ["", "| largest ops | group | calls per step | ms per step | share |", "|---|---|---:|---:|---:|"]
    for op in profile["ops"][:top]:
        lines.append(f"| {op['op']} | {op['group']} | {op['calls_per_step']:.0f} | {op['ms_per_step']:.1f} | "
                     f"{op['ms_per_step'] / step:.1%} |")
    return "\n".join(lines)


def side_by_side(profiles: list[dict]) -> str:
    """One row per group, one column (ms per step and share) per profile."""
    header = "| group | " + " | ".join(profile["label"] for profile in profiles) + " |"
    lines = [header, "|---|" + "---:|" * len(profiles)]
    for group in GROUPS:
        cells = [f"{p['groups_ms_per_step'][group]:.0f} ms ({p['groups_ms_per_step'][group] / p['step_ms']:.0%})"
                 for p in profiles]
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    lines.append("| **step** | " + " | ".join(f"**{p['step_ms']:.0f} ms**" for p in profiles) + " |")
    lines.append("| step, CPU time | " + " | ".join(f"{p['step_cpu_ms']:.0f} ms" for p in profiles) + " |")
    loads = ", ".join(f"{p['machine']['load_average'][0]:.1f}" for p in profiles)
    return "\n".join(lines) + f"\n\nload average at the start of each: {loads}"


if __name__ == "__main__":
    main()
