"""What every route depends on: the server's settings, a database session, and the authenticated caller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from tunesmith.serve.api.errors import ApiError
from tunesmith.serve.keys import Caller, find_caller
from tunesmith.serve.settings import ServeSettings
from tunesmith.serve.ui.session import cookie_key, needs_origin_check, same_origin

T = TypeVar("T")
# auto_error=False: a missing key gets our 401 in OpenAI's shape instead of FastAPI's 403. Declaring it puts the
# bearer scheme into /openapi.json.
bearer = HTTPBearer(auto_error=False, description="an API key from `tunesmith keys create --tenant NAME`")


def settings(request: Request) -> ServeSettings:
    return request.app.state.settings


async def writing(request: Request, work: Callable[[Session], T]) -> T:
    """`work(session)` with a session that may write, in a worker thread, the session closed there.

    Write routes are async and write through this, rather than taking a session as a dependency: the transaction
    must end before the response goes out. A sync route's response is validated on a thread of the same pool that
    other requests wait in for their turn to write (see db.py), so a write held until a dependency's teardown could
    wait on the writers waiting on it.
    """
    def run() -> T:
        with request.app.state.sessions() as db:
            return work(db)
    return await run_in_threadpool(run)


def reader(request: Request) -> Iterator[Session]:
    """A session for a route that only reads (on SQLite it takes no write lock)."""
    with request.app.state.readers() as db:
        yield db


def caller(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Caller:
    """The key's tenant: from the Authorization header, or else from the web UI's sign-in cookie (which may change
    things only in requests from the UI's own pages; see ui/session.py)."""
    key = credentials.credentials if credentials is not None else cookie_key(request)
    if key is None:
        raise ApiError(401, "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'; create one with "
                            "`tunesmith keys create --tenant NAME`.", code="missing_api_key")
    if credentials is None and needs_origin_check(request) and not same_origin(request):
        raise ApiError(403, "a request signed in by the web UI's cookie must come from this server's own pages; "
                            "send the key as 'Authorization: Bearer KEY' instead", code="cross_origin_refused")
    # A short session of its own: a route's transaction should not start (and, on SQLite, lock) before it needs to.
    with request.app.state.readers() as db:
        found = find_caller(db, key)
    if found is None:
        raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
    return found


def admin(who: Caller = Depends(caller)) -> Caller:
    if not who.admin:
        raise ApiError(403, "this route needs an admin key (`tunesmith keys create --tenant NAME --admin`)",
                       code="admin_required")
    return who
