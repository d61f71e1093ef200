"""Cursor pagination as OpenAI does it: `after` is the id of the last object the client has, `limit` the page."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from tunesmith.serve.api.errors import ApiError


def cursor_page(session: Session, query: Select, model, after: str | None, limit: int, newest_first: bool = True,
                scope=None):
    """(rows, has_more) of `query` ordered by `model.seq`, continuing after the object whose id is `after`.
    `scope` restricts the cursor lookup (the caller's tenant, the job), so another tenant's id is just unknown."""
    if after is not None:
        cursor = session.scalar(select(model.seq).where(model.id == after, *(scope or ())))
        if cursor is None:
            raise ApiError(400, f"after: no object with id {after} in this list", param="after", code="invalid_cursor")
        query = query.where(model.seq < cursor if newest_first else model.seq > cursor)
    query = query.order_by(model.seq.desc() if newest_first else model.seq.asc()).limit(limit + 1)
    rows = list(session.scalars(query))
    return rows[:limit], len(rows) > limit
