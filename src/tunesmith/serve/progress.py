"""When a running job should finish: the time of its latest training step plus that step's eta.

The eta comes from the core's step events (training time left at the current pace). For a `refine:` job it covers
the round being trained, the only part the loop knows the length of. (A job cannot set `stages:`: the extension's
allowlist in job_spec.py refuses it.)
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunesmith.serve.tables import RUNNING, Job, JobEvent


def estimated_finishes(session: Session, jobs: Iterable[Job]) -> dict[int, int]:
    """{job seq: unix time} for the running jobs among `jobs` that have logged a step."""
    found = {}
    for job in jobs:
        if job.status != RUNNING:
            continue
        step = session.scalar(
            select(JobEvent.data).where(JobEvent.job_seq == job.seq, JobEvent.type == "metrics",
                                        JobEvent.data["type"].as_string() == "step")
            .order_by(JobEvent.seq.desc()).limit(1))
        if step and _number(step.get("time")) and _number(step.get("eta_s")):
            found[job.seq] = round(step["time"] + step["eta_s"])
    return found


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
