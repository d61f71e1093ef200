"""Response bodies in the OpenAI API's shapes, and how rows become them."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from tunesmith.serve.tables import Checkpoint, Job, JobEvent, StoredFile

T = TypeVar("T")


class ListPage(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


def page(items: list, has_more: bool) -> dict:
    return {"data": items, "has_more": has_more, "first_id": items[0].id if items else None,
            "last_id": items[-1].id if items else None}


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"]
    status_details: str | None = None
    expires_at: int | None = None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool


def file_object(row: StoredFile) -> FileObject:
    return FileObject(id=row.id, bytes=row.bytes, created_at=row.created_at, filename=row.filename,
                      purpose=row.purpose, status=row.status, status_details=row.status_details)


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


def _unknown(value) -> bool:
    return value is None


class Hyperparameters(BaseModel):
    n_epochs: Literal["auto"] | int | float
    batch_size: Literal["auto"] | int
    learning_rate_multiplier: Literal["auto"] | float
    # tunesmith's: what `auto` became once the run knew it, left out until then (a job looks as OpenAI's does)
    learning_rate: float | None = Field(None, exclude_if=_unknown,
                                        description="the rate learning_rate: auto's range test chose")
    micro_batch_size: int | None = Field(None, exclude_if=_unknown, description="batch_size: auto: examples per "
                                         "micro-batch after an out-of-memory step cut the batch")
    gradient_accumulation: int | None = Field(None, exclude_if=_unknown,
                                              description="micro-batches per optimizer step after that cut")


class FineTuningJob(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    finished_at: int | None = None
    model: str
    organization_id: str
    status: Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
    training_file: str
    validation_file: str | None = None
    hyperparameters: Hyperparameters
    method: dict[str, Any]
    seed: int
    suffix: str | None = None
    metadata: dict[str, str] | None = None
    error: JobError | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    result_files: list[str]
    integrations: list[dict[str, Any]] = []
    estimated_finish: int | None = None
    tunesmith: dict[str, Any] | None = None


def job_object(job: Job, organization_id: str, estimated_finish: int | None = None) -> FineTuningJob:
    method = dict(job.method)
    kind = method.get("type", "supervised")
    method[kind] = {**(method.get(kind) or {}), "hyperparameters": job.hyperparameters}
    return FineTuningJob(
        id=job.id, created_at=job.created_at, finished_at=job.finished_at, model=job.model,
        organization_id=organization_id, status=job.status, training_file=job.training_file,
        validation_file=job.validation_file, hyperparameters=job.hyperparameters, method=method, seed=job.seed,
        suffix=job.suffix, metadata=job.user_metadata, error=job.error, fine_tuned_model=job.fine_tuned_model,
        trained_tokens=job.trained_tokens, result_files=job.result_files or [], tunesmith=job.extension,
        estimated_finish=estimated_finish)


class JobEventObject(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"]
    data: dict[str, Any] | None = None


def event_object(row: JobEvent) -> JobEventObject:
    return JobEventObject(id=row.id, created_at=row.created_at, level=row.level, message=row.message, type=row.type,
                          data=row.data)


class CheckpointMetrics(BaseModel):
    step: float
    train_loss: float | None = None
    valid_loss: float | None = None


class CheckpointObject(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuning_job_id: str
    step_number: int
    metrics: CheckpointMetrics
    # A checkpoint holds training state, not a servable model: it has no model id of its own.
    fine_tuned_model_checkpoint: str | None = None


def checkpoint_object(row: Checkpoint, job_id: str) -> CheckpointObject:
    return CheckpointObject(id=row.id, created_at=row.created_at, fine_tuning_job_id=job_id, step_number=row.step,
                            metrics=CheckpointMetrics(step=row.step, train_loss=row.train_loss,
                                                      valid_loss=row.valid_loss))


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class TenantUsage(BaseModel):
    id: str
    name: str
    created_at: int
    files: int
    file_bytes: int
    jobs: dict[str, int]  # by state
    trained_tokens: int


class AuditLogEntry(BaseModel):
    """Who did what to which object and when (ids only, never names or contents)."""

    id: str
    object: Literal["audit_log"] = "audit_log"
    effective_at: int
    tenant_id: str
    tenant: str
    actor: str  # an API key id, or "cli" for `tunesmith keys`
    type: str  # file.create, file.delete, job.create, job.cancel, key.create, key.revoke
    object_id: str
