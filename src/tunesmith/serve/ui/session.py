"""Signing in to the web UI: the API key in an HttpOnly cookie, and the same-origin rule for changes made with it.

Why a cookie rather than sessionStorage: page scripts never see the key, so a script smuggled into a page could not
read it and send it elsewhere; and the browser sends it by itself with page loads, the live event stream
(EventSource cannot set an Authorization header) and the mounted review pages. It is a session cookie (gone when the
browser closes), SameSite=Strict (no other site's page makes the browser send it) and Secure over https. Because a
cookie rides along with whatever the browser sends, a request that changes something on the strength of the cookie
must also come from this server's own pages: its Origin header must name this host.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "tunesmith_key"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cookie_key(request: Request) -> str | None:
    return request.cookies.get(COOKIE) or None


def same_origin(request: Request) -> bool:
    """Whether the browser says the request comes from a page of this host (it sends Origin with every POST)."""
    origin = request.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc == request.headers.get("host")


def needs_origin_check(request: Request) -> bool:
    return request.method not in SAFE_METHODS


def remember_key(response: Response, request: Request, key: str) -> None:
    response.set_cookie(COOKIE, key, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        path="/")


def forget_key(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
