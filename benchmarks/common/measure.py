"""What a comparison measures: a child process's own peak RSS, and one phase's time and peak memory.

Every run of every tool is its own child process, so memory left behind by one run never counts against
the next. Linux only: the peaks come from wait4's rusage and /proc.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

LAUNCHER = Path(__file__).with_name("child_peak.py")  # run_child starts every command through it


@dataclass
class ChildRun:
    returncode: int
    peak_rss_mib: float  # the whole process: imports, model load, data preparation, training, evaluation
    wall_seconds: float


def run_child(command: list[str], log_path: Path, env: dict[str, str] | None = None) -> ChildRun:
    """Run `command` with stdout and stderr in log_path; return its exit code and its own peak RSS."""
    # Started from this process, the command's ru_maxrss would be at least this process's RSS (see child_peak.py):
    # a small launcher starts it and reports wait4's figures for it alone.
    handle, result = tempfile.mkstemp(prefix="run-child-", suffix=".txt")
    os.close(handle)
    started = time.perf_counter()
    try:
        with open(log_path, "w") as log:
            subprocess.run([sys.executable, "-S", str(LAUNCHER), result, *command], stdout=log,
                           stderr=subprocess.STDOUT, env=env, check=False)
        reported = Path(result).read_text().split()
    finally:
        os.unlink(result)
    if not reported:
        raise RuntimeError(f"{command[0]} could not be started; see {log_path}")
    status, max_rss_kib = map(int, reported)
    return ChildRun(os.waitstatus_to_exitcode(status), max_rss_kib / 1024, time.perf_counter() - started)


class Phase:
    """`with Phase() as phase:` times the block (wall and this process's CPU seconds, the steadier figure on a shared
    machine) and records its peak RSS and peak GPU memory (None on CPU).

    The RSS high-water mark is reset on entry (writing 5 to /proc/self/clear_refs), so the peak belongs to
    this phase: memory from imports and model loading is included only as far as it is still resident.
    """

    seconds: float
    cpu_seconds: float  # user + system time of every thread of this process
    peak_rss_mib: float
    peak_gpu_mib: float | None

    def __enter__(self) -> "Phase":
        gc.collect()
        _synchronize()
        Path("/proc/self/clear_refs").write_text("5")
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._start, self._cpu_start = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        _synchronize()  # queued GPU work belongs to the phase
        self.seconds = time.perf_counter() - self._start
        self.cpu_seconds = time.process_time() - self._cpu_start
        self.peak_rss_mib = _high_water_mark_mib()
        self.peak_gpu_mib = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _high_water_mark_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # reported in kB
    raise RuntimeError("/proc/self/status has no VmHWM line")
