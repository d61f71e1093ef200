"""validating_files -> queued: a worker checks a new job's files and config before it may be claimed.

Uploads were already checked by the data checks; here a job whose file failed them (or was deleted since)
fails with the file's line-numbered message as its error, like OpenAI reports invalid training files. The checks
run outside any transaction (building a config imports the training stack); the state change is an UPDATE
guarded by `status = 'validating_files'`, so two workers checking one job move it once.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tunesmith.serve.db import now
from tunesmith.serve.event_log import add_event
from tunesmith.serve.files import file_path
from tunesmith.serve.job_spec import JobSpecError, resolved_hyperparameters, run_config
from tunesmith.serve.settings import ServeSettings
from tunesmith.serve.tables import FAILED, QUEUED, VALIDATING, Job, StoredFile

BATCH = 20


class _Invalid(Exception):
    def __init__(self, code: str, message: str, param: str | None):
        super().__init__(message)
        self.error = {"code": code, "message": message, "param": param}


def validate_pending(sessions: sessionmaker[Session], settings: ServeSettings) -> list[str]:
    """Check the oldest jobs waiting in validating_files (of models this worker offers); returns the ids moved."""
    with sessions() as session, session.begin():
        jobs = session.scalars(select(Job).where(Job.status == VALIDATING, Job.model.in_(list(settings.models)))
                               .order_by(Job.seq).limit(BATCH)).all()
        files = {(f.tenant_seq, f.id): f for f in session.scalars(select(StoredFile).where(
            StoredFile.id.in_([i for job in jobs for i in (job.training_file, job.validation_file) if i]))).all()}
    moved = []
    for job in jobs:
        try:
            values = {"status": QUEUED, "hyperparameters": _check(settings, job, files)}
            message, level = "Files validated, moving job to queued state", "info"
        except _Invalid as invalid:
            values = {"status": FAILED, "error": invalid.error, "finished_at": now()}
            message, level = invalid.error["message"], "error"
        with sessions() as session, session.begin():
            if session.execute(update(Job).where(Job.seq == job.seq, Job.status == VALIDATING).values(**values)
                               ).rowcount:
                add_event(session, job.seq, message, level=level)
                moved.append(job.id)
    return moved


def _check(settings: ServeSettings, job: Job, files: dict) -> dict:
    paths = {}
    for param, file_id in (("training_file", job.training_file), ("validation_file", job.validation_file)):
        if file_id is None:
            continue
        row = files.get((job.tenant_seq, file_id))
        if row is None or row.deleted_at is not None or not file_path(settings, row).is_file():
            raise _Invalid(f"invalid_{param}", f"{param} {file_id} was deleted before the job started", param)
        if row.status == "error":
            raise _Invalid(f"invalid_{param}", f"{param} {file_id} is not valid training data: {row.status_details}",
                           param)
        paths[param] = file_path(settings, row)
    try:
        config = run_config(job.method, job.extension, job.seed, base_model=settings.models[job.model],
                            train=paths["training_file"], validation=paths.get("validation_file"),
                            output_dir=settings.runs_dir / job.id)
    except JobSpecError as error:
        raise _Invalid("invalid_parameter", str(error), error.param) from None
    return resolved_hyperparameters(config)
