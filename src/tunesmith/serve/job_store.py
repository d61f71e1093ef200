"""Creating, finding and cancelling jobs for a caller; every lookup goes through the caller's tenant."""

from __future__ import annotations

import hashlib
import json
import secrets

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tunesmith.data.readers import SUPPORTED_EXTENSIONS
from tunesmith.methods.registry import FAMILIES
from tunesmith.serve.api.errors import ApiError, not_found
from tunesmith.serve.audit import record
from tunesmith.serve.db import now
from tunesmith.serve.event_log import add_event
from tunesmith.serve.files import FINE_TUNE, is_image_archive
from tunesmith.serve.ids import new_id
from tunesmith.serve.job_spec import (
    Hyperparameters, JobCreate, JobSpecError, MethodRequest, job_config, job_processes,
)
from tunesmith.serve.keys import Caller
from tunesmith.serve.settings import ServeSettings
from tunesmith.serve.tables import CANCELLED, FINISHED, QUEUED, RUNNING, VALIDATING, IdempotencyKey, Job, StoredFile


def get_file(session: Session, caller: Caller, file_id: str) -> StoredFile:
    row = session.scalar(select(StoredFile).where(
        StoredFile.id == file_id, StoredFile.tenant_seq == caller.tenant_seq, StoredFile.deleted_at.is_(None)))
    if row is None:
        raise not_found("File object", file_id)
    return row


def get_job(session: Session, caller: Caller, job_id: str) -> Job:
    row = session.scalar(select(Job).where(Job.id == job_id, Job.tenant_seq == caller.tenant_seq))
    if row is None:
        raise not_found("fine-tuning job", job_id)
    return row


def run_dir(settings: ServeSettings, job: Job):
    return settings.runs_dir / job.id


def create_job(session: Session, settings: ServeSettings, caller: Caller, request: JobCreate,
               idempotency_key: str | None = None) -> Job:
    """A new job in validating_files, or with an Idempotency-Key seen before, the job that key created
    (409 if the body differs). Commits."""
    request_hash = hashlib.sha256(json.dumps(request.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
    if idempotency_key:
        earlier = _idempotent_job(session, caller, idempotency_key, request_hash)
        if earlier is not None:
            return earlier
        session.rollback()  # end the read: _new_job builds the config (slow on first use) before it writes
    job = _new_job(session, settings, caller, request)
    if idempotency_key:
        session.add(IdempotencyKey(tenant_seq=caller.tenant_seq, key=idempotency_key, request_hash=request_hash,
                                   job_seq=job.seq, created_at=now()))
    try:
        session.commit()
    except IntegrityError:  # the same key raced in from another request: answer as that request did
        session.rollback()
        earlier = _idempotent_job(session, caller, idempotency_key, request_hash) if idempotency_key else None
        if earlier is None:
            raise
        return earlier
    return job


def _idempotent_job(session: Session, caller: Caller, key: str, request_hash: str) -> Job | None:
    seen = session.scalar(select(IdempotencyKey).where(
        IdempotencyKey.tenant_seq == caller.tenant_seq, IdempotencyKey.key == key))
    if seen is None:
        return None
    if seen.request_hash != request_hash:
        raise ApiError(409, "this Idempotency-Key was already used with a different request body; use a new key "
                            "for a new job", code="idempotency_key_reused")
    return session.get(Job, seen.job_seq)


def _new_job(session: Session, settings: ServeSettings, caller: Caller, request: JobCreate) -> Job:
    if request.model not in settings.models:
        raise ApiError(400, f"model '{request.model}' is not offered by this server; offered: "
                            f"{', '.join(settings.models)}", param="model", code="model_not_available")
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    try:
        method = request.method_object()
        job = Job(id=new_id("ftjob"), tenant_seq=caller.tenant_seq, model=request.model,
                  training_file=request.training_file, validation_file=request.validation_file or None,
                  suffix=request.suffix, seed=seed, user_metadata=request.metadata, method=method,
                  extension=request.tunesmith, status=VALIDATING, created_at=now(), result_files=[])
        # Built now so a bad request is refused at once (the worker builds it again from what is stored), and
        # before the first query: building imports the training stack, and no transaction should wait on that.
        job_config(settings, job, settings.models[request.model], settings.files_dir / job.training_file,
                   settings.files_dir / job.validation_file if job.validation_file else None, check_paths=False)
        job_processes(request.tunesmith, settings.devices_per_job, settings.device_limit())
    except JobSpecError as error:
        raise ApiError(400, str(error), param=error.param, code="invalid_parameter") from None
    family = settings.family(request.model)
    training = _training_file(session, caller, request.training_file, "training_file", family)
    validation = _training_file(session, caller, request.validation_file, "validation_file", family) \
        if request.validation_file else None
    job.hyperparameters = Hyperparameters.model_validate(
        MethodRequest.model_validate(method).options().get("hyperparameters") or {}).model_dump()
    session.add(job)
    session.flush()
    add_event(session, job.seq, f"Validating training file: {training.id}"
              + (f" and validation file: {validation.id}" if validation else ""))
    record(session, caller.tenant_seq, caller.key_id, "job.create", job.id)
    return job


def _training_file(session: Session, caller: Caller, file_id: str, param: str, family: str) -> StoredFile:
    try:
        row = get_file(session, caller, file_id)
    except ApiError:
        raise ApiError(400, f"{param}: no such file: {file_id}", param=param, code="invalid_file") from None
    if row.purpose != FINE_TUNE:
        raise ApiError(400, f"{param}: file {file_id} has purpose '{row.purpose}'; upload it with purpose "
                            f"'{FINE_TUNE}'", param=param, code="invalid_file")
    if is_image_archive(row) != (family == "diffusion"):
        wanted = ("a .zip or .tar of images (with optional same-name .txt captions)" if family == "diffusion"
                  else f"a data file ({', '.join(SUPPORTED_EXTENSIONS)}), not an image archive")
        raise ApiError(400, f"{param}: file {file_id} ({row.filename}) is not what a {FAMILIES[family]} "
                            f"trains on; it needs {wanted}", param=param, code="invalid_file")
    return row


def cancel_job(session: Session, caller: Caller, job: Job) -> Job:
    """Cancel a job that has not finished. A running job's runner sees the state, stops after the current step
    and keeps its checkpoint. Commits."""
    was = job.status
    done = session.execute(update(Job).where(Job.seq == job.seq, Job.status.in_((VALIDATING, QUEUED, RUNNING)))
                           .values(status=CANCELLED, finished_at=now())).rowcount
    if not done:
        session.refresh(job)
        if job.status in FINISHED:
            raise ApiError(400, f"job {job.id} has already {job.status}; only jobs that are validating, queued "
                                "or running can be cancelled", code="job_finished")
    message = "Job cancelled" + ("; training stops after the current step and keeps its last checkpoint"
                                 if was == RUNNING else "")
    add_event(session, job.seq, message)
    record(session, caller.tenant_seq, caller.key_id, "job.cancel", job.id)
    session.commit()
    session.refresh(job)
    return job
