"""How workers take jobs: atomic claims with leases, so no job runs twice and none is lost with its worker.

A claim picks the oldest queued job with `SELECT ... FOR UPDATE SKIP LOCKED` (PostgreSQL: concurrent workers
skip each other's rows instead of waiting) and moves it to running with an UPDATE guarded by `status =
'queued'` (SQLite ignores the row lock; the guard alone makes the claim atomic there). The same code runs on
both. A claim holds until its lease expires; the worker renews it while the job runs, and any worker re-queues
jobs whose lease ran out (their worker died), to be resumed from their last checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tunesmith.serve.db import now
from tunesmith.serve.event_log import add_event
from tunesmith.serve.tables import FAILED, QUEUED, RUNNING, Job

CLAIM_RETRIES = 5


def claim_next(sessions: sessionmaker[Session], worker_id: str, lease_seconds: float,
               models: Iterable[str]) -> Job | None:
    """Move the oldest queued job (of a base model this worker offers) to running under this worker."""
    for _ in range(CLAIM_RETRIES):
        with sessions() as session, session.begin():
            seq = session.scalar(
                select(Job.seq).where(Job.status == QUEUED, Job.model.in_(list(models)))
                .order_by(Job.seq).limit(1).with_for_update(skip_locked=True))
            if seq is None:
                return None
            claimed = session.execute(
                update(Job).where(Job.seq == seq, Job.status == QUEUED)
                .values(status=RUNNING, worker_id=worker_id, lease_expires_at=time.time() + lease_seconds,
                        attempts=Job.attempts + 1)).rowcount
            if claimed:
                job = session.get(Job, seq)
                add_event(session, seq, f"Fine-tuning job started on worker {worker_id} (attempt {job.attempts})")
                return job
    return None  # others kept taking the jobs we picked: let the caller poll again


def renew(sessions: sessionmaker[Session], job_seq: int, worker_id: str, lease_seconds: float) -> bool:
    """Extend this worker's claim; False once the job is no longer running under it (cancelled, finished,
    or re-queued after a missed renewal)."""
    with sessions() as session, session.begin():
        return bool(session.execute(
            update(Job).where(Job.seq == job_seq, Job.worker_id == worker_id, Job.status == RUNNING)
            .values(lease_expires_at=time.time() + lease_seconds)).rowcount)


def requeue_expired(sessions: sessionmaker[Session]) -> list[str]:
    """Put running jobs whose worker stopped renewing back in the queue; returns their ids."""
    requeued = []
    with sessions() as session, session.begin():
        stale = session.scalars(select(Job).where(Job.status == RUNNING, Job.lease_expires_at < time.time())
                                .with_for_update(skip_locked=True)).all()
        for job in stale:
            if _back_to_queue(session, job, f"Worker {job.worker_id} stopped renewing its claim; job re-queued "
                                            "to resume from its last checkpoint"):
                requeued.append(job.id)
    return requeued


def release(sessions: sessionmaker[Session], job_seq: int, worker_id: str, reason: str) -> bool:
    """Give a running job back to the queue (its worker is shutting down)."""
    with sessions() as session, session.begin():
        job = session.get(Job, job_seq)
        return job is not None and job.worker_id == worker_id and _back_to_queue(session, job, reason)


def fail(sessions: sessionmaker[Session], job_seq: int, worker_id: str, error: dict, message: str) -> bool:
    """Mark a job this worker runs as failed (its process crashed)."""
    with sessions() as session, session.begin():
        failed = session.execute(
            update(Job).where(Job.seq == job_seq, Job.worker_id == worker_id, Job.status == RUNNING)
            .values(status=FAILED, error=error, finished_at=now(), lease_expires_at=None)).rowcount
        if failed:
            add_event(session, job_seq, message, level="error")
        return bool(failed)


def clear_lease(sessions: sessionmaker[Session], job_seq: int, worker_id: str) -> None:
    """The job's process has ended: whatever its state, no process of this worker writes to it any more."""
    with sessions() as session, session.begin():
        session.execute(update(Job).where(Job.seq == job_seq, Job.worker_id == worker_id, Job.status != RUNNING)
                        .values(lease_expires_at=None))


def _back_to_queue(session: Session, job: Job, reason: str) -> bool:
    moved = session.execute(
        update(Job).where(Job.seq == job.seq, Job.status == RUNNING, Job.worker_id == job.worker_id)
        .values(status=QUEUED, worker_id=None, lease_expires_at=None)).rowcount
    if moved:
        add_event(session, job.seq, reason, level="warn")
    return bool(moved)
