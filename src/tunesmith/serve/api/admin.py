"""`/v1/admin/tenants`: every tenant with its usage, for admin keys only."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tunesmith.serve.api import deps
from tunesmith.serve.api.errors import documented
from tunesmith.serve.api.schemas import ListPage, TenantUsage, page
from tunesmith.serve.keys import Caller
from tunesmith.serve.tables import Job, StoredFile, Tenant

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=documented(401, 403))


@router.get("/tenants", response_model=ListPage[TenantUsage], operation_id="listTenants")
def tenants(_admin: Caller = Depends(deps.admin), session: Session = Depends(deps.session)):
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
