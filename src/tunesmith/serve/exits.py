"""How a job's training process ends, as its worker reads the exit status."""

from __future__ import annotations

import signal

EXIT_INTERRUPTED = 75  # stopped by a signal, not a cancel: the worker puts the job back in the queue
EXIT_LOST = 76  # the claim moved to another worker, or this process's worker died
EXIT_RANK_FAILED = 77  # one rank of a multi-process job failed; its supervisor fails the job with the reason


def describe_exit(code: int) -> str:
    """'exit code 3' or 'signal SIGKILL' (a negative status, as subprocess and torchrun give it)."""
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"
