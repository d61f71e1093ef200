"""Sign in (check the key, keep it in the cookie) and sign out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse

from tunesmith.serve.keys import find_caller
from tunesmith.serve.ui.access import SIGN_IN, from_own_page
from tunesmith.serve.ui.session import forget_key, remember_key
from tunesmith.serve.ui.templating import render

router = APIRouter(include_in_schema=False)
EXPIRED = "That API key is no longer valid (revoked, or from another server); sign in with a current one."
WRONG = "That API key is not valid: check it, or create one with `tunesmith keys create --tenant NAME`."


@router.get(SIGN_IN)
def sign_in_page(request: Request, expired: bool = False):
    return render(request, "sign_in.html", error=EXPIRED if expired else None)


@router.post(SIGN_IN, dependencies=[Depends(from_own_page)])
def sign_in(request: Request, key: str = Form(..., max_length=200)):
    with request.app.state.readers() as session:
        found = find_caller(session, key.strip())
    if found is None:
        return render(request, "sign_in.html", status_code=401, error=WRONG)
    response = RedirectResponse("/ui/jobs", status_code=303)
    remember_key(response, request, key.strip())
    return response


@router.post("/ui/sign-out", dependencies=[Depends(from_own_page)])
def sign_out():
    response = RedirectResponse(SIGN_IN, status_code=303)
    forget_key(response)
    return response
