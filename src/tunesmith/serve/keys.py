"""API keys: random secrets shown once; the database keeps only their sha256, and looks keys up by it.

A key has 256 random bits, so a fast hash is enough: nobody can search that space, unlike a password's.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunesmith.serve.audit import record
from tunesmith.serve.db import now
from tunesmith.serve.ids import new_id
from tunesmith.serve.settings import SAFE_NAME
from tunesmith.serve.tables import ApiKey, Tenant
from tunesmith.errors import ConfigError

KEY_PREFIX = "ts-"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who is asking: the tenant every query is filtered by, and the key (for the audit log)."""

    tenant_seq: int
    tenant_id: str
    tenant_name: str
    key_id: str
    admin: bool


def create_key(session: Session, tenant_name: str, admin: bool = False) -> tuple[str, ApiKey]:
    """A new key for the tenant (created if new). Returns the key itself, which is not stored anywhere."""
    if not SAFE_NAME.match(tenant_name):
        raise ConfigError(f"--tenant {tenant_name!r}: use letters, digits, '.', '_' and '-' (up to 64)")
    tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        tenant = Tenant(id=new_id("org"), name=tenant_name, created_at=now())
        session.add(tenant)
        session.flush()
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(id=new_id("key"), tenant_seq=tenant.seq, key_hash=hash_key(key), admin=admin, created_at=now())
    session.add(row)
    record(session, tenant.seq, "cli", "key.create", row.id)
    return key, row


def find_caller(session: Session, key: str) -> Caller | None:
    row = session.execute(
        select(ApiKey, Tenant).join(Tenant, Tenant.seq == ApiKey.tenant_seq)
        .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    api_key, tenant = row
    return Caller(tenant.seq, tenant.id, tenant.name, api_key.id, api_key.admin)


def revoke_key(session: Session, key_id: str) -> None:
    row = session.scalar(select(ApiKey).where(ApiKey.id == key_id))
    if row is None:
        raise ConfigError(f"no API key with id {key_id}; `tunesmith keys list` shows the ids")
    row.revoked_at = now()
    record(session, row.tenant_seq, "cli", "key.revoke", row.id)


def list_keys(session: Session) -> list[tuple[ApiKey, Tenant]]:
    return list(session.execute(
        select(ApiKey, Tenant).join(Tenant, Tenant.seq == ApiKey.tenant_seq).order_by(ApiKey.seq)).tuples())
