"""Summaries and output: medians over repeats, a Markdown table with a ratio row, the machine, results JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parents[1] / "results"


@dataclass
class Column:
    key: str  # the field of a run's result
    header: str
    fmt: str  # format spec for the tools' medians, e.g. ".0f"


def medians(runs: list[dict], tool: str, keys: list[str]) -> dict[str, float | None]:
    """Median of each key over one tool's runs (None where a run did not report it, e.g. GPU memory on CPU)."""
    mine = [run for run in runs if run["tool"] == tool]
    return {
        key: statistics.median(values) if (values := [run[key] for run in mine if run.get(key) is not None]) else None
        for key in keys
    }


def ratios(numerator: dict, denominator: dict) -> dict[str, float | None]:
    return {
        key: value / denominator[key] if value is not None and denominator.get(key) else None
        for key, value in numerator.items()
    }


def markdown_table(rows: dict[str, dict], columns: list[Column], ratio_label: str, ratio: dict) -> str:
    """One row per tool (its medians) and a last row of ratios, written as 1.23x."""
    lines = [
        "| tool | " + " | ".join(column.header for column in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for tool, values in rows.items():
        cells = [_cell(values.get(column.key), column.fmt) for column in columns]
        lines.append(f"| {tool} | " + " | ".join(cells) + " |")
    cells = ["-" if ratio.get(column.key) is None else f"{ratio[column.key]:.2f}x" for column in columns]
    lines.append(f"| **{ratio_label}** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> dict:
    """What the numbers were measured on, for the results file and the README table."""
    info = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
    }
    packages = ("tunesmith", "torch", "transformers", "peft", "trl", "accelerate")
    info["versions"] = {name: _version(name) for name in packages}
    return info


def write_results(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def write_stamped(benchmark: str, payload: dict, output: Path | None = None, *, name: str | None = None,
                  folder: Path = RESULTS, machine_info: dict | None = None) -> Path:
    """Write `payload` headed by what made it (benchmark, time, command line, the machine: `machine_info` or
    `machine()`) to `output`, by default folder/<name>-<device>-<time>.json (name: the benchmark's); the path."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    now = datetime.now()
    path = output or folder / f"{name or benchmark.rsplit('/', 1)[-1]}-{device}-{now:%Y%m%d-%H%M}.json"
    write_results(path, {"benchmark": benchmark, "created": now.isoformat(timespec="seconds"),
                         "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
                         "machine": machine_info if machine_info is not None else machine(), **payload})
    return path


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def _memory_gib() -> float | None:
    meminfo = Path("/proc/meminfo")
    if not meminfo.is_file():
        return None
    total_kib = int(next(line for line in meminfo.read_text().splitlines() if line.startswith("MemTotal:")).split()[1])
    return round(total_kib / 2**20, 1)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
