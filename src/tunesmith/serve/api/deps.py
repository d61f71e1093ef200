"""What every route depends on: the server's settings, a database session, and the authenticated caller."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from tunesmith.serve.api.errors import ApiError
from tunesmith.serve.keys import Caller, find_caller
from tunesmith.serve.settings import ServeSettings

# auto_error=False: a missing key gets our 401 in OpenAI's shape instead of FastAPI's 403. Declaring it puts the
# bearer scheme into /openapi.json.
bearer = HTTPBearer(auto_error=False, description="an API key from `tunesmith keys create --tenant NAME`")


def settings(request: Request) -> ServeSettings:
    return request.app.state.settings


def session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as db:
        yield db


def caller(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Caller:
    if credentials is None:
        raise ApiError(401, "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'; create one with "
                            "`tunesmith keys create --tenant NAME`.", code="missing_api_key")
    # A short session of its own: a route's transaction should not start (and, on SQLite, lock) before it needs to.
    with request.app.state.sessions() as db:
        found = find_caller(db, credentials.credentials)
    if found is None:
        raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
    return found


def admin(who: Caller = Depends(caller)) -> Caller:
    if not who.admin:
        raise ApiError(403, "this route needs an admin key (`tunesmith keys create --tenant NAME --admin`)",
                       code="admin_required")
    return who
