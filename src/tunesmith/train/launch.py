"""Data-parallel processes on this machine, forked from a process that has already imported the training code.

torchrun starts every rank as a fresh interpreter, and each spends ~10 s of CPU importing torch, transformers and
peft before its first step. Here torch's elastic agent (what torchrun runs) starts the ranks through
multiprocessing's fork server instead: a fresh process that imports the training code once (`PRELOAD`) and forks
each rank from that state, so a rank is ready in well under a second. The fork server touches no device before it
forks, which keeps forking safe on GPUs (each rank initialises CUDA itself).

Rank `i` gets the usual environment (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and runs
`entrypoint(*args)`; a rank that raises or exits non-zero makes the agent stop the others, as torchrun does. A forked
rank keeps the fork server's command line, so each names itself `tunesmith i/n` (its name in top and `ps -o comm`).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

PRELOAD = ("tunesmith.run",)


class LaunchStopped(Exception):
    """The launcher was asked to stop (a signal); it has passed it on to the ranks, which have ended."""


@dataclass(frozen=True)
class RankFailure:
    rank: int
    code: int  # negative: the signal that ended it
    time: float  # when the agent saw it end


def describe_exit(code: int) -> str:
    """'exit code 3' or 'signal SIGKILL' (a negative status, as subprocess and torchrun give it)."""
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"


def threads_per_rank(nproc: int) -> int:
    """OMP_NUM_THREADS if set, else this machine's cores shared out: ranks must not oversubscribe the CPU."""
    return int(os.environ.get("OMP_NUM_THREADS") or max(1, (os.cpu_count() or 1) // nproc))


def launch(nproc: int, entrypoint: Callable, *args, log_dir: Path | None = None,
           shutdown_timeout_s: int | None = None, preload: tuple[str, ...] = PRELOAD) -> list[RankFailure]:
    """Run `entrypoint(*args)` on `nproc` ranks and wait; the ranks that failed (empty when all succeeded).
    Raises LaunchStopped when a signal stopped the launcher (the ranks got it too)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch
    from torch.distributed.run import config_from_args, parse_args

    os.environ["OMP_NUM_THREADS"] = str(threads_per_rank(nproc))  # the ranks inherit it
    options = ["--nnodes=1", f"--nproc-per-node={nproc}", "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:0",
               f"--rdzv-id={uuid.uuid4()}", "--max-restarts=0", "--start-method=forkserver"]
    if log_dir is not None:
        options.append(f"--log-dir={log_dir}")
    if shutdown_timeout_s is not None:
        options.append(f"--shutdown-timeout={shutdown_timeout_s}")
    config, _, _ = config_from_args(parse_args([*options, "rank-entrypoint"]))  # the script is ours: entrypoint
    # Only takes effect if this process has not started its fork server yet; otherwise the ranks import on demand.
    multiprocessing.set_forkserver_preload(list(preload))
    try:
        elastic_launch(config, _named_rank)(entrypoint, *args)
    except SignalException:
        raise LaunchStopped() from None
    except ChildFailedError as failed:
        return [RankFailure(rank, failure.exitcode, failure.timestamp) for rank, failure in failed.failures.items()]
    return []


def _named_rank(entrypoint: Callable, *args):
    try:  # the process's name (comm: 15 characters at most); Linux only
        Path("/proc/self/comm").write_text(f"tunesmith {os.environ['RANK']}/{os.environ['WORLD_SIZE']}"[:15])
    except OSError:
        pass
    return entrypoint(*args)
