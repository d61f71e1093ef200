"""`/v1/fine_tuning/jobs`: create (with Idempotency-Key), list, retrieve, cancel, events (or their live stream),
checkpoints."""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from tunesmith.serve.api import deps
from tunesmith.serve.api.errors import documented, links
from tunesmith.serve.api.pages import cursor_page
from tunesmith.serve.api.schemas import (
    CheckpointObject, FineTuningJob, JobEventObject, ListPage, checkpoint_object, event_object, job_object, page,
)
from tunesmith.serve.job_spec import JobCreate
from tunesmith.serve.job_store import cancel_job, create_job, get_job
from tunesmith.serve.keys import Caller
from tunesmith.serve.progress import estimated_finishes
from tunesmith.serve.settings import ServeSettings
from tunesmith.serve.tables import FINISHED, Checkpoint, Job, JobEvent

router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["fine-tuning"], responses=documented(400, 401, 404))

EVENTS_RESPONSES = {200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                          "description": "a page of events, or with stream=true the events as server-sent events"}}


@router.post("", response_model=FineTuningJob, operation_id="createFineTuningJob", responses={
    **documented(409), 200: {"links": links("job_id", "retrieveFineTuningJob", "cancelFineTuningJob",
                                            "listFineTuningEvents", "listFineTuningJobCheckpoints")}})
async def create(request: Request, body: JobCreate, caller: Caller = Depends(deps.caller),
                 settings: ServeSettings = Depends(deps.settings),
                 idempotency_key: str | None = Header(None, max_length=255)):
    """Create a job. With an `Idempotency-Key` header, repeating the request returns the same job; the same key
    with another body is refused (409)."""
    return await deps.writing(request, lambda session: job_object(
        create_job(session, settings, caller, body, idempotency_key), caller.tenant_id))


@router.get("", response_model=ListPage[FineTuningJob], operation_id="listPaginatedFineTuningJobs")
def list_jobs(after: str | None = None, limit: int = Query(20, ge=1, le=100),
              caller: Caller = Depends(deps.caller), session: Session = Depends(deps.reader)):
    query = select(Job).where(Job.tenant_seq == caller.tenant_seq)
    rows, more = cursor_page(session, query, Job, after, limit, scope=[Job.tenant_seq == caller.tenant_seq])
    finishes = estimated_finishes(session, rows)
    return page([job_object(r, caller.tenant_id, finishes.get(r.seq)) for r in rows], more)


@router.get("/{job_id}", response_model=FineTuningJob, operation_id="retrieveFineTuningJob")
def retrieve(job_id: str, caller: Caller = Depends(deps.caller), session: Session = Depends(deps.reader)):
    """The job; while it runs, `estimated_finish` is when training should end (from its latest step's eta)."""
    job = get_job(session, caller, job_id)
    return job_object(job, caller.tenant_id, estimated_finishes(session, [job]).get(job.seq))


@router.post("/{job_id}/cancel", response_model=FineTuningJob, operation_id="cancelFineTuningJob")
async def cancel(request: Request, job_id: str, caller: Caller = Depends(deps.caller)):
    """Cancel a job that has not finished; a running one stops after its current step and keeps its checkpoint."""
    return await deps.writing(request, lambda session: job_object(
        cancel_job(session, caller, get_job(session, caller, job_id)), caller.tenant_id))


@router.get("/{job_id}/events", response_model=ListPage[JobEventObject], responses=EVENTS_RESPONSES,
            operation_id="listFineTuningEvents")
def events(request: Request, job_id: str, after: str | None = None, limit: int = Query(20, ge=1, le=1000),
           stream: bool = False, caller: Caller = Depends(deps.caller), session: Session = Depends(deps.reader)):
    """Newest first, paginated with `after`. With `stream=true`: every event oldest first (after `after`, or the
    `Last-Event-ID` header, when given) as server-sent events, live until the job finishes."""
    job = get_job(session, caller, job_id)
    scope = [JobEvent.job_seq == job.seq]
    if stream:
        start = after or request.headers.get("last-event-id")
        cursor = session.scalar(select(JobEvent.seq).where(JobEvent.id == start, *scope)) if start else 0
        session.close()
        return EventSourceResponse(_event_stream(request, job.seq, cursor or 0))
    rows, more = cursor_page(session, select(JobEvent).where(*scope), JobEvent, after, limit, scope=scope)
    return page([event_object(r) for r in rows], more)


async def _event_stream(request: Request, job_seq: int, cursor: int):
    poll = request.app.state.settings.poll_seconds
    while True:
        rows, status, settled = await run_in_threadpool(_events_since, request, job_seq, cursor)
        for row in rows:
            cursor = row.seq
            yield f"id: {row.id}\nevent: {row.type}\ndata: {json.dumps(event_object(row).model_dump())}\n\n"
        if settled and not rows:
            yield f"event: done\ndata: {json.dumps({'status': status})}\n\n"
            return
        if await request.is_disconnected():
            return
        if not rows:
            await asyncio.sleep(poll)


def _events_since(request: Request, job_seq: int, cursor: int) -> tuple[list[JobEvent], str, bool]:
    """New events, the job's state, and whether it is settled: finished, and no training process still writing
    (a cancelled job's process adds its last checkpoint after the state changed)."""
    with request.app.state.readers() as session:
        rows = list(session.scalars(select(JobEvent).where(JobEvent.job_seq == job_seq, JobEvent.seq > cursor)
                                    .order_by(JobEvent.seq).limit(100)))
        status, lease = session.execute(select(Job.status, Job.lease_expires_at).where(Job.seq == job_seq)).one()
    return rows, status, status in FINISHED and (lease is None or lease < time.time())


@router.get("/{job_id}/checkpoints", response_model=ListPage[CheckpointObject],
            operation_id="listFineTuningJobCheckpoints")
def checkpoints(job_id: str, after: str | None = None, limit: int = Query(10, ge=1, le=100),
                caller: Caller = Depends(deps.caller), session: Session = Depends(deps.reader)):
    """Checkpoints written so far, newest first, with the training and validation loss at each."""
    job = get_job(session, caller, job_id)
    scope = [Checkpoint.job_seq == job.seq]
    rows, more = cursor_page(session, select(Checkpoint).where(*scope), Checkpoint, after, limit, scope=scope)
    return page([checkpoint_object(r, job.id) for r in rows], more)
