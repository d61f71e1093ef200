"""A job on several processes: its runner launches one rank per device (torch's elastic agent, as torchrun runs it, in
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
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tunesmith.atomic import write_text_atomic
from tunesmith.serve.exits import EXIT_INTERRUPTED, EXIT_LOST
from tunesmith.train.launch import PRELOAD, RankFailure, describe_exit, first_failure, launch

# Grace torchrun gives ranks to checkpoint after passing on a SIGTERM, within the worker's own (worker.py).
SHUTDOWN_TIMEOUT_S = 45
RUNNER = "tunesmith.serve.runner"


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


def run_ranks(processes: int, argv: list[str], log_dir: Path) -> list[RankFailure]:
    """`processes` ranks of this job's runner (`main(argv)`) on this machine; the ranks that failed (none: all
    succeeded). LaunchStopped when a signal stopped them."""
    return launch(processes, _runner_rank, argv, log_dir=log_dir,
                  shutdown_timeout_s=SHUTDOWN_TIMEOUT_S, preload=(*PRELOAD, RUNNER))


def _runner_rank(argv: list[str]) -> None:
    from tunesmith.serve.runner import main

    sys.exit(main(argv))


def verdict(exits: list[RankFailure], recorded: dict[int, dict], processes: int) -> Verdict:
    """How the job ended, from the ranks' exit statuses and the failures they recorded."""
    if not exits:
        return Verdict(0)
    codes = {e.code for e in exits}
    if EXIT_LOST in codes:  # the claim moved on, or the supervisor went: another worker has the job
        return Verdict(EXIT_LOST)
    # Ended without recording why, other than by the SIGTERM torchrun sends the rest once one has failed.
    silent = [e for e in exits if e.rank not in recorded and e.code not in (EXIT_INTERRUPTED, -signal.SIGTERM)]
    if silent:
        first = first_failure(silent)
        message = (f"rank {first.rank} of {processes}: the training process ended with {describe_exit(first.code)} "
                   "(a crash, or out of memory); the server and other jobs are unaffected")
        return Verdict(0, {"code": "training_process_crashed", "message": message, "param": None})
    if recorded:
        first = min(recorded.values(), key=lambda r: (r["time"], r["rank"]))
        return Verdict(0, {"code": first["code"], "message": f"rank {first['rank']} of {processes}: "
                                                             f"{first['message']}", "param": None})
    return Verdict(EXIT_INTERRUPTED)  # every rank stopped at a checkpoint (a signal): resumable
