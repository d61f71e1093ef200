"""Who is looking at a page: the tenant of the key in the sign-in cookie, or a redirect to the sign-in page.

Pages that change something (sign in, create, cancel) also need the request to come from this server's own pages
(see session.py), so another site cannot submit a form into a signed-in browser.
"""

from __future__ import annotations

from fastapi import Depends, Request
from starlette.responses import RedirectResponse, Response

from tunesmith.serve.keys import Caller, find_caller
from tunesmith.serve.ui.session import cookie_key, forget_key, same_origin

SIGN_IN = "/ui/sign-in"


class SignInNeeded(Exception):
    def __init__(self, expired: bool):
        super().__init__("sign in first")
        self.expired = expired  # a cookie was sent, but its key is unknown or revoked


class CrossOriginRefused(Exception):
    pass


def page_caller(request: Request) -> Caller:
    key = cookie_key(request)
    if key is not None:
        with request.app.state.readers() as session:
            found = find_caller(session, key)
        if found is not None:
            return found
    raise SignInNeeded(expired=key is not None)


def from_own_page(request: Request) -> None:
    if not same_origin(request):
        raise CrossOriginRefused()


def changing_caller(request: Request, caller: Caller = Depends(page_caller)) -> Caller:
    from_own_page(request)
    return caller


def to_sign_in(_request: Request, exc: SignInNeeded) -> Response:
    response = RedirectResponse(SIGN_IN + ("?expired=1" if exc.expired else ""), status_code=303)
    if exc.expired:
        forget_key(response)
    return response
