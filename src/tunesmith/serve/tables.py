"""The service's tables. Rows are found by a public id (`file-...`, `ftjob-...`) and always through their
tenant; `seq` is an internal, ever-growing key that orders lists and backs the `after` cursors."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Job states, in the order a job moves through them.
VALIDATING, QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "validating_files", "queued", "running", "succeeded", "failed", "cancelled")
JOB_STATES = (VALIDATING, QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINISHED = (SUCCEEDED, FAILED, CANCELLED)

Seq = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements only INTEGER primary keys


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    __tablename__ = "tenants"
    seq: Mapped[int] = mapped_column(Seq, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


class ApiKey(Base):
    __tablename__ = "api_keys"
    seq: Mapped[int] = mapped_column(Seq, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)  # shown in lists and the audit log, not a secret
    tenant_seq: Mapped[int] = mapped_column(ForeignKey("tenants.seq"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the key; the key itself is never stored
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, default=None)


class StoredFile(Base):
    __tablename__ = "files"
    seq: Mapped[int] = mapped_column(Seq, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    tenant_seq: Mapped[int] = mapped_column(ForeignKey("tenants.seq"), index=True)
    filename: Mapped[str] = mapped_column(String(255))  # the client's name: metadata only, never a path
    stored_name: Mapped[str] = mapped_column(String(64))  # the name under the storage folder: id + known suffix
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))  # uploaded | processed | error
    status_details: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[int] = mapped_column(BigInteger)
    deleted_at: Mapped[int | None] = mapped_column(BigInteger, default=None)


class Job(Base):
    __tablename__ = "jobs"
    seq: Mapped[int] = mapped_column(Seq, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    tenant_seq: Mapped[int] = mapped_column(ForeignKey("tenants.seq"), index=True)
    model: Mapped[str] = mapped_column(String(64))  # a base model name the server offers
    training_file: Mapped[str] = mapped_column(String(40))
    validation_file: Mapped[str | None] = mapped_column(String(40), default=None)
    suffix: Mapped[str | None] = mapped_column(String(64), default=None)
    seed: Mapped[int | None] = mapped_column(BigInteger, default=None)
    user_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    method: Mapped[dict[str, Any]] = mapped_column(JSON)  # the request's method object, as given
    extension: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)  # the `tunesmith` config sections
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON)  # resolved n_epochs, batch_size, lr multiplier
    status: Mapped[str] = mapped_column(String(20), index=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    fine_tuned_model: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)
    result_files: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[int] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Claims: the worker that runs the job and until when its claim holds unless renewed.
    worker_id: Mapped[str | None] = mapped_column(String(120), default=None)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class JobEvent(Base):
    __tablename__ = "job_events"
    seq: Mapped[int] = mapped_column(Seq, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    job_seq: Mapped[int] = mapped_column(ForeignKey("jobs.seq"), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    level: Mapped[str] = mapped_column(String(8))  # info | warn | error
    type: Mapped[str] = mapped_column(String(8))  # message | metrics
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)  # the core event, as to_dict() gives it


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    seq: Mapped[int] = mapped_column(Seq, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    job_seq: Mapped[int] = mapped_column(ForeignKey("jobs.seq"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(BigInteger)
    train_loss: Mapped[float | None] = mapped_column(Float, default=None)
    valid_loss: Mapped[float | None] = mapped_column(Float, default=None)


class AuditEntry(Base):
    """Who did what to which object and when; ids only, never names or contents."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(Seq, primary_key=True, autoincrement=True)
    at: Mapped[int] = mapped_column(BigInteger)
    tenant_seq: Mapped[int] = mapped_column(ForeignKey("tenants.seq"), index=True)
    actor: Mapped[str] = mapped_column(String(40))  # an API key id, or "cli"
    action: Mapped[str] = mapped_column(String(32))  # file.create, file.delete, job.create, job.cancel, key.create
    object_id: Mapped[str] = mapped_column(String(40))


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("tenant_seq", "key"),)
    seq: Mapped[int] = mapped_column(Seq, primary_key=True, autoincrement=True)
    tenant_seq: Mapped[int] = mapped_column(ForeignKey("tenants.seq"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    job_seq: Mapped[int] = mapped_column(ForeignKey("jobs.seq"))
    created_at: Mapped[int] = mapped_column(BigInteger)
