"""Data-parallel processes on this machine, forked from a process that has already imported the training code.

torchrun starts every rank as a fresh interpreter, and each spends ~10 s of CPU importing torch, transformers and
peft before its first step. Here torch's elastic agent (what torchrun runs) starts the ranks through
multiprocessing's fork server instead: a fresh process that imports the training code once (`PRELOAD`) and forks
each rank from that state, so a rank is ready in well under a second. The fork server touches no device before it
forks, which keeps forking safe on GPUs (each rank initialises CUDA itself).

Rank `i` gets the usual environment (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and runs
`entrypoint(*args)`; a rank that raises or exits non-zero makes the agent stop the others, as torchrun does. A forked
rank keeps the fork server's command line, so each names itself `tunesmith i/n` (its name in top and `ps -o comm`).

The agent reports one failed rank: the first it finds ended at a poll. When a rank is killed (kill -9, the
out-of-memory killer) the others fail a moment later on the broken collective, and a poll that finds them all ended
may name one of those. So every rank also writes how it ended (its exit status, or the SIGTERM that stopped it) to
a file of the launch, and the launcher reports every rank that failed: one that wrote nothing was killed outright.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
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
    code: int | None  # negative: the signal that ended it; None: killed by a signal the launcher did not see
    time: float | None  # when it ended (None: unknown)


def describe_exit(code: int | None) -> str:
    """'exit code 3' or 'signal SIGKILL' (a negative status, as subprocess and torchrun give it)."""
    if code is None:
        return "a signal it could not report"  # killed outright: it wrote no ending
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"


def first_failure(failures: list[RankFailure]) -> RankFailure:
    """The rank that failed first; one killed outright (its time unknown) before any that ended on its own."""
    return min(failures, key=lambda f: (f.time is not None, f.time or 0.0, f.rank))


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
    endings = Path(tempfile.mkdtemp(prefix="tunesmith-ranks-"))
    try:
        elastic_launch(config, _rank)(str(endings), entrypoint, *args)
    except SignalException:
        raise LaunchStopped() from None
    except ChildFailedError as failed:
        return _failures(failed.failures, [_ending(endings, rank) for rank in range(nproc)])
    finally:
        shutil.rmtree(endings, ignore_errors=True)
    return []


def _failures(seen: dict, written: list[RankFailure]) -> list[RankFailure]:
    """The ranks that failed: the agent's exit status where it saw one, the rank's own time (the agent's is whole
    seconds) where it wrote one."""
    found = []
    for ending in written:
        agent = seen.get(ending.rank)
        if agent is not None:
            found.append(RankFailure(ending.rank, agent.exitcode,
                                     ending.time if ending.time is not None else agent.timestamp))
        elif ending.code != 0:
            found.append(ending)
    return found


def _ending(endings: Path, rank: int) -> RankFailure:
    """How `rank` ended, as it wrote it; a rank that wrote nothing was killed outright."""
    try:
        written = json.loads((endings / f"{rank}.json").read_text())
    except (OSError, ValueError):
        return RankFailure(rank, None, None)
    return RankFailure(rank, written["code"], written["time"])


def _rank(endings: str, entrypoint: Callable, *args):
    """A rank: named, and writing how it ended for the launcher (see the module's docstring)."""
    rank = os.environ["RANK"]
    ending = Path(endings) / f"{rank}.json"
    try:  # the process's name (comm: 15 characters at most); Linux only
        Path("/proc/self/comm").write_text(f"tunesmith {rank}/{os.environ['WORLD_SIZE']}"[:15])
    except OSError:
        pass
    # Until the training loop installs its own handler (it hands back to this one): a SIGTERM, which the agent sends
    # to the other ranks once one has failed, is written down, then ends the rank as it would have.
    signal.signal(signal.SIGTERM, lambda signum, frame: _end_by_signal(ending, signum))
    code = 1  # an exception
    try:
        result = entrypoint(*args)
        code = 0
        return result
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        raise
    finally:
        _write_ending(ending, code)


def _end_by_signal(ending: Path, signum: int) -> None:
    _write_ending(ending, -signum)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _write_ending(ending: Path, code: int) -> None:
    try:
        ending.write_text(json.dumps({"code": code, "time": time.time()}))
    except OSError:  # the launcher then takes the rank as killed: its exit status, if seen, still stands
        pass
