"""`/v1/admin`: every tenant with its usage, and the audit log; for admin keys only."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from tunesmith.serve.api import deps
from tunesmith.serve.api.errors import ApiError, documented
from tunesmith.serve.api.schemas import AuditLogEntry, ListPage, TenantUsage, page
from tunesmith.serve.keys import Caller
from tunesmith.serve.tables import AuditEntry, Job, StoredFile, Tenant

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=documented(401, 403))
# Audit entries are named by their row number: only admins see them, and they see every tenant's anyway.
AUDIT_ID = re.compile(r"^audit-(\d{1,18})$")


@router.get("/tenants", response_model=ListPage[TenantUsage], operation_id="listTenants")
def tenants(_admin: Caller = Depends(deps.admin), session: Session = Depends(deps.reader)):
    files_query = (select(StoredFile.tenant_seq, func.count(), func.coalesce(func.sum(StoredFile.bytes), 0))
                   .where(StoredFile.deleted_at.is_(None)).group_by(StoredFile.tenant_seq))
    files = {tenant: (count, int(size)) for tenant, count, size in session.execute(files_query)}
    jobs: dict[int, dict[str, int]] = {}
    for tenant, status, count in session.execute(
            select(Job.tenant_seq, Job.status, func.count()).group_by(Job.tenant_seq, Job.status)):
        jobs.setdefault(tenant, {})[status] = count
    tokens_query = select(Job.tenant_seq, func.coalesce(func.sum(Job.trained_tokens), 0)).group_by(Job.tenant_seq)
    tokens = {tenant: int(total) for tenant, total in session.execute(tokens_query)}
    rows = [TenantUsage(id=t.id, name=t.name, created_at=t.created_at, files=files.get(t.seq, (0, 0))[0],
                        file_bytes=files.get(t.seq, (0, 0))[1], jobs=jobs.get(t.seq, {}),
                        trained_tokens=tokens.get(t.seq, 0))
            for t in session.scalars(select(Tenant).order_by(Tenant.seq))]
    return page(rows, False)


@router.get("/audit_logs", response_model=ListPage[AuditLogEntry], operation_id="listAuditLogs",
            responses=documented(400))
def audit_logs(tenant: str | None = Query(None, max_length=64, description="a tenant's id (org-...) or name"),
               action: str | None = Query(None, max_length=32, description="e.g. job.create, file.delete"),
               after: str | None = Query(None, max_length=40), limit: int = Query(20, ge=1, le=100),
               _admin: Caller = Depends(deps.admin), session: Session = Depends(deps.reader)):
    """The audit log, newest first, paginated with `after`; optionally one tenant's entries or one action's."""
    query = select(AuditEntry, Tenant).join(Tenant, Tenant.seq == AuditEntry.tenant_seq)
    if tenant is not None:
        seq = session.scalar(select(Tenant.seq).where(or_(Tenant.id == tenant, Tenant.name == tenant)))
        if seq is None:
            raise ApiError(400, f"tenant: no tenant with id or name {tenant!r}", param="tenant", code="unknown_tenant")
        query = query.where(AuditEntry.tenant_seq == seq)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if after is not None:
        cursor = AUDIT_ID.match(after)
        if cursor is None:
            raise ApiError(400, f"after: expected an audit entry id like audit-42, got {after!r}", param="after",
                           code="invalid_cursor")
        query = query.where(AuditEntry.seq < int(cursor.group(1)))
    rows = session.execute(query.order_by(AuditEntry.seq.desc()).limit(limit + 1)).all()
    entries = [AuditLogEntry(id=f"audit-{entry.seq}", effective_at=entry.at, tenant_id=owner.id, tenant=owner.name,
                             actor=entry.actor, type=entry.action, object_id=entry.object_id)
               for entry, owner in rows[:limit]]
    return page(entries, len(rows) > limit)
