"""How a job's training process ends, as its worker reads the exit status."""

from __future__ import annotations

EXIT_INTERRUPTED = 75  # stopped by a signal, not a cancel: the worker puts the job back in the queue
EXIT_LOST = 76  # the claim moved to another worker, or this process's worker died
EXIT_RANK_FAILED = 77  # one rank of a multi-process job failed; its supervisor fails the job with the reason
