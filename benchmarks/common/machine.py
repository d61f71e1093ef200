"""What a speed figure was measured on, and the best the machine could do: its matmul throughput and the LoRA ceiling.

A tokens/s figure means nothing without its machine: the same code ran at 589 tokens/s on an AVX512-BF16 EPYC and
~10 on an AVX2-only one. So every speed benchmark measures, before its runs, a 2048x2048 `torch.matmul` in fp32 and
in the half-precision dtypes on the device it runs on, and records the CPU model, core count and the instruction-set
flags that decide low-precision speed (or the GPU), and the load average (the machine may be shared).

LoRA ceiling, tokens/s = matmul FLOP/s / (4 x N), N = the model's parameters: a token costs 2N FLOPs forward and 2N
for the input gradients backward; frozen weights need no weight gradient, and the adapters' and attention scores'
FLOPs are left out (a few percent on small models at short lengths). It is the speed of a step that did nothing
but full-speed matrix products.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import torch

from benchmarks.common.report import machine

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
MATMUL_SIZE = 2048
PROBE_SIZE = 512
SLOW_PRODUCT_CPU_SECONDS = 5.0  # a CPU 2048 product costing more is an emulated kernel ...
SMALL_PRODUCT_CPU_SECONDS = 1.0  # ... measured at the largest power-of-two size that costs at most this
CEILING_FORMULA = "matmul FLOP/s / (4 x parameters): 2N forward + 2N input-gradient backward FLOPs per token"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def describe(device: torch.device, repeats: int = 5) -> dict:
    """The machine (report.machine), its CPU flags, matmul throughput per dtype on `device` and the load average."""
    info = machine()
    info["cpu_flags"] = cpu_flags()
    info["cpu_generation"] = cpu_generation()
    info["device"] = device.type
    info["torch_threads"] = torch.get_num_threads()  # OMP_NUM_THREADS=1 makes CPU seconds a steadier A/B figure
    info["matmul"] = {name: matmul_gflops(DTYPES[name], device, repeats) for name in _dtypes(device)}
    info["bf16_native"] = _bf16_native(device)
    info["load_average"] = load_average()
    return info


def cpu_flags() -> dict[str, bool]:
    """Which of FLAGS the CPU reports in /proc/cpuinfo (all False where there is none)."""
    cpuinfo = Path("/proc/cpuinfo")
    flags: set[str] = set()
    if cpuinfo.is_file():
        line = next((line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), "")
        flags = set(line.partition(":")[2].split())
    return {flag: flag in flags for flag in FLAGS}


def cpu_generation(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, int] | None:
    """The first CPU's "cpu family" and "model" numbers (None where absent): "AMD EPYC" names both Zen 4 (family
    25) and Zen 5 (family 26), whose bf16 matrix products differ 2x, with the same flags."""
    if not cpuinfo.is_file():
        return None
    fields = dict(line.partition(":")[::2] for line in cpuinfo.read_text().split("\n\n")[0].splitlines())
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    if not fields.get("cpu family", "").isdigit() or not fields.get("model", "").isdigit():
        return None
    return {"family": int(fields["cpu family"]), "model": int(fields["model"])}


def matmul_gflops(dtype: torch.dtype, device: torch.device, repeats: int = 5) -> dict:
    """{"gflops": median GFLOP/s of `repeats` square products after one warm-up, "size": their side, and on CPU
    "gflops_per_cpu_s": FLOPs per CPU second of this process, the figure a busy machine changes least}.

    The side is MATMUL_SIZE unless, on a CPU, one product would cost over SLOW_PRODUCT_CPU_SECONDS (bf16 emulated
    on an AVX2 CPU runs at ~1.4 GFLOP per CPU second against ~30 for fp32: 12 CPU seconds for one 2048 product):
    then a smaller power of two, which measures the same rate, since a kernel that slow is bound by its arithmetic,
    not by the size. CPU seconds, not wall seconds, decide: a busy machine does not change them much.
    """
    size = MATMUL_SIZE
    if device.type == "cpu":
        _, probe = _median_seconds(PROBE_SIZE, dtype, device, repeats=3)  # a product costs size^3
        if probe * (size / PROBE_SIZE) ** 3 > SLOW_PRODUCT_CPU_SECONDS:
            while size > PROBE_SIZE and probe * (size / PROBE_SIZE) ** 3 > SMALL_PRODUCT_CPU_SECONDS:
                size //= 2
    wall, cpu = _median_seconds(size, dtype, device, repeats)
    flops = 2 * size**3
    measured = {"gflops": round(flops / wall / 1e9, 2), "size": size}
    if device.type == "cpu":
        measured["gflops_per_cpu_s"] = round(flops / cpu / 1e9, 2)
    return measured


def _median_seconds(size: int, dtype: torch.dtype, device: torch.device, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of one [size, size] product."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator).to(device=device, dtype=dtype) for _ in range(2))
    torch.matmul(a, b)  # warm-up: kernel selection, first-touch of the output
    wall, cpu = [], []
    for _ in range(repeats):
        _synchronize(device)
        started, cpu_started = time.perf_counter(), time.process_time()
        torch.matmul(a, b)
        _synchronize(device)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return statistics.median(wall), statistics.median(cpu)


def lora_ceiling(gflops: float, parameters: int) -> float:
    """Tokens/s of a LoRA step made of full-speed matrix products only (CEILING_FORMULA)."""
    return gflops * 1e9 / (4 * parameters)


def summary_line(info: dict) -> str:
    """One line for the printed summary: where, flags, threads, matmul GFLOP/s per dtype, the load average."""
    where = info["gpu"] or f"{info['cpu']}, {info['cpu_count']} cores"
    generation = info.get("cpu_generation")  # absent in results files from before it was recorded
    if not info["gpu"] and generation:
        where += f", family {generation['family']} model {generation['model']}"
    flags = ", ".join(flag for flag, present in info["cpu_flags"].items() if present) or "none of " + "/".join(FLAGS)
    speeds = ", ".join(
        f"{name} {_gflops(measured)}" + ("" if measured["size"] == MATMUL_SIZE else f" (at {measured['size']})")
        + (" (emulated)" if name == "bf16" and not info["bf16_native"] else "")
        for name, measured in info["matmul"].items()
    )
    load = info["load_average"]
    return (f"{where} ({flags}), {info['torch_threads']} torch threads; square matmul GFLOP/s: {speeds}; "
            f"load average {load[0]:.1f}")


def _gflops(measured: dict) -> str:
    value = measured["gflops"]
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: on a shared machine, how many others wanted the cores."""
    return [round(value, 2) for value in os.getloadavg()]


def _dtypes(device: torch.device) -> tuple[str, ...]:
    return ("fp32", "bf16", "fp16") if device.type == "cuda" else ("fp32", "bf16")


def _bf16_native(device: torch.device) -> bool:
    """Whether bf16 matrix products run in hardware (AVX512-BF16/AMX on CPU), not emulated through fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    from tunesmith.train.precision import cpu_supports_bf16

    return cpu_supports_bf16()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
