"""Everything the web UI adds to the service's app: its pages, the review mount, its static files, and the error
handling of pages (a sign-in redirect, or an HTML page where the API would answer JSON)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import RedirectResponse, Response

from tunesmith.serve.api.errors import ApiError
from tunesmith.serve.ui import file_pages, image_pages, job_pages, model_pages, sign_in
from tunesmith.serve.ui.access import CrossOriginRefused, SignInNeeded, to_sign_in
from tunesmith.serve.ui.review_pages import MOUNT, ReviewMount
from tunesmith.serve.ui.templating import STATIC_URL, render

STATIC = Path(__file__).resolve().parent.parent / "static"
PAGES = "/ui/"


def install(app: FastAPI) -> None:
    for module in (sign_in, file_pages, job_pages, model_pages, image_pages):
        app.include_router(module.router)
    app.mount(MOUNT, ReviewMount())
    app.mount(STATIC_URL, StaticFiles(directory=STATIC), name="ui_static")
    app.add_api_route("/", lambda: RedirectResponse(PAGES, status_code=303), include_in_schema=False)
    app.add_exception_handler(SignInNeeded, to_sign_in)
    app.add_exception_handler(CrossOriginRefused, _refused)
    api_errors = app.exception_handlers[ApiError]

    async def api_error(request: Request, exc: ApiError) -> Response:
        if request.url.path.startswith(PAGES):
            return render(request, "message.html", status_code=exc.status, heading=exc.message)
        return await api_errors(request, exc)

    app.add_exception_handler(ApiError, api_error)


def _refused(request: Request, _exc: CrossOriginRefused) -> Response:
    return render(request, "message.html", status_code=403,
                  heading="Refused: this form was not sent from this server's own pages")
