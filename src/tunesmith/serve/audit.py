"""The audit log: one row per create, cancel or delete, naming the key that did it and the object's id."""

from sqlalchemy.orm import Session

from tunesmith.serve.db import now
from tunesmith.serve.tables import AuditEntry


def record(session: Session, tenant_seq: int, actor: str, action: str, object_id: str) -> None:
    session.add(AuditEntry(at=now(), tenant_seq=tenant_seq, actor=actor, action=action, object_id=object_id))
