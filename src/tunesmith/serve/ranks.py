"""A job on several processes: its runner launches torchrun with one rank per device (the elastic agent runs in
the runner, which becomes the ranks' supervisor), each rank a runner of its own for the same job.

- Every rank watches the job as a single runner does: a cancel reaches each one (and the loop agrees on stopping
  across ranks), a lost claim or a dead supervisor ends it. The supervisor watches the worker and the claim too.
- Events come from rank 0 only (the core gives `on_event` to the main process), and rank 0 publishes the result.
- A rank that fails writes why (its rank, when, the message) beside the job's log and exits EXIT_RANK_FAILED;
  torchrun then stops the others. The supervisor fails the job with the first failure: a rank that died without a
  word (a signal, out of memory) before any that wrote, since what the others report is mostly the broken
  collective that followed.
- The worker's SIGTERM reaches the supervisor, whose torchrun passes it on to every rank: each checkpoints and
  stops, and the job goes back to the queue.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from tunesmith.atomic import write_text_atomic
from tunesmith.serve.exits import EXIT_INTERRUPTED, EXIT_LOST, describe_exit

# Grace torchrun gives ranks to checkpoint after passing on a SIGTERM, within the worker's own (worker.py).
SHUTDOWN_TIMEOUT_S = 45
RUNNER = "tunesmith.serve.runner"


class Stopped(Exception):
    """The supervisor was asked to stop (a signal); the ranks have been told and have ended."""


@dataclass(frozen=True)
class RankExit:
    rank: int
    code: int  # negative: the signal that ended it
    time: float  # when torchrun saw it end


@dataclass(frozen=True)
class Verdict:
    """What the supervisor reports to the worker: an exit status, and the job's error when a rank failed."""

    exit_code: int
    error: dict | None = None


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def failure_path(logs_dir: Path, job_id: str, rank_: int) -> Path:
    return logs_dir / f"{job_id}.rank{rank_}.json"


def record_failure(logs_dir: Path, job_id: str, code: str, message: str) -> None:
    """This rank's reason for failing, for the supervisor to read once torchrun has stopped every rank."""
    write_text_atomic(failure_path(logs_dir, job_id, rank()),
                      json.dumps({"rank": rank(), "time": time.time(), "code": code, "message": message}))


def clear_failures(logs_dir: Path, job_id: str, processes: int) -> None:
    for index in range(processes):
        failure_path(logs_dir, job_id, index).unlink(missing_ok=True)


def recorded_failures(logs_dir: Path, job_id: str, processes: int) -> dict[int, dict]:
    found = {}
    for index in range(processes):
        path = failure_path(logs_dir, job_id, index)
        if path.is_file():
            found[index] = json.loads(path.read_text(encoding="utf-8"))
    return found


def run_ranks(processes: int, argv: list[str], log_dir: Path) -> list[RankExit]:
    """torchrun with `processes` ranks of `python -m tunesmith.serve.runner *argv` on this machine; the ranks that
    failed (none: all succeeded). Stopped when a signal stopped them."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = parse_args(["--standalone", f"--nproc-per-node={processes}", f"--shutdown-timeout={SHUTDOWN_TIMEOUT_S}",
                       f"--log-dir={log_dir}", "-m", RUNNER, *argv])
    try:
        run(args)
    except SignalException:
        raise Stopped() from None
    except ChildFailedError as failed:
        return [RankExit(index, failure.exitcode, failure.timestamp) for index, failure in failed.failures.items()]
    return []


def verdict(exits: list[RankExit], recorded: dict[int, dict], processes: int) -> Verdict:
    """How the job ended, from the ranks' exit statuses and the failures they recorded."""
    if not exits:
        return Verdict(0)
    codes = {e.code for e in exits}
    if EXIT_LOST in codes:  # the claim moved on, or the supervisor went: another worker has the job
        return Verdict(EXIT_LOST)
    # Ended without recording why, other than by the SIGTERM torchrun sends the rest once one has failed.
    silent = [e for e in exits if e.rank not in recorded and e.code not in (EXIT_INTERRUPTED, -signal.SIGTERM)]
    if silent:
        first = min(silent, key=lambda e: (e.time, e.rank))
        message = (f"rank {first.rank} of {processes}: the training process ended with {describe_exit(first.code)} "
                   "(a crash, or out of memory); the server and other jobs are unaffected")
        return Verdict(0, {"code": "training_process_crashed", "message": message, "param": None})
    if recorded:
        first = min(recorded.values(), key=lambda r: (r["time"], r["rank"]))
        return Verdict(0, {"code": first["code"], "message": f"rank {first['rank']} of {processes}: "
                                                             f"{first['message']}", "param": None})
    return Verdict(EXIT_INTERRUPTED)  # every rank stopped at a checkpoint (a signal): resumable
