"""validating_files -> queued: a worker checks a new job's files and config before it may be claimed.

Uploads were already checked by the data checks; here a job whose file failed them (or was deleted since)
fails with the file's line-numbered message as its error, like OpenAI reports invalid training files. A diffusion
job's images are read again with its own data settings (data.min_size, on_bad_image, and a caption for each image
or data.instance_prompt), and a job asking for more processes than this worker has devices fails. The checks
run outside any transaction (building a config imports the training stack); the state change is an UPDATE
guarded by `status = 'validating_files'`, so two workers checking one job move it once.
"""

from __future__ import annotations

import warnings

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tunesmith.serve.db import now
from tunesmith.serve.event_log import add_event
from tunesmith.errors import DataError
from tunesmith.serve.archives import in_archive_terms
from tunesmith.serve.files import data_path
from tunesmith.serve.job_spec import JobSpecError, job_config, job_processes, resolved_hyperparameters
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
        if row is None or row.deleted_at is not None or not data_path(settings, row).exists():
            raise _Invalid(f"invalid_{param}", f"{param} {file_id} was deleted before the job started", param)
        if row.status == "error":
            raise _Invalid(f"invalid_{param}", f"{param} {file_id} is not valid training data: {row.status_details}",
                           param)
        paths[param] = data_path(settings, row)
    try:
        config = job_config(settings, job, settings.models[job.model], paths["training_file"],
                            paths.get("validation_file"))
        job_processes(job.extension, settings.devices_per_job, settings.device_limit())
    except JobSpecError as error:
        raise _Invalid("invalid_parameter", str(error), error.param) from None
    if config.family == "diffusion":
        _check_images(config, job, paths)
    return resolved_hyperparameters(config)


def _check_images(config, job: Job, paths: dict) -> None:
    """The images as the run will read them, so a too-small image or a missing caption fails the job now."""
    from tunesmith.data.images.folder import read_image_folder
    from tunesmith.data.images.settings import ImageSettings

    data = config.data
    settings = ImageSettings(min_size=data.min_size, on_bad_image=data.on_bad_image)
    for param, file_id in (("training_file", job.training_file), ("validation_file", job.validation_file)):
        if param not in paths:
            continue
        folder = paths[param]
        try:
            with warnings.catch_warnings():  # skipped images are the run's to report
                warnings.simplefilter("ignore")
                read_image_folder(folder, settings, default_caption=data.instance_prompt)
        except DataError as error:
            raise _Invalid(f"invalid_{param}", f"{param} {file_id}: {in_archive_terms(str(error), folder, file_id)}",
                           param) from None
