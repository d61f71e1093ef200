"""Rendering the UI's pages: the Jinja2 templates (autoescaped), their filters, and the headers every page gets.

The Content-Security-Policy lets a page run only this server's own scripts and styles: a model's answer or a file
name holding markup is escaped by the templates, and even markup that slipped through could not run inline script.
"""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import HTMLResponse

from tunesmith.version import __version__

STATIC_URL = "/ui/static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
           "Cache-Control": "no-store"}

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def _static(path: str) -> str:
    return f"{STATIC_URL}/{path}?v={__version__}"  # a new version's scripts are never taken from the cache


def _when(timestamp: int | float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "–"


def _loss(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "–"


def _hyperparameters(values: dict) -> str:
    """key=value for each one set (job.js writes the same when the run settles an `auto`)."""
    return ", ".join(f"{key}={value}" for key, value in values.items() if value is not None)


templates.env.globals["static"] = _static
templates.env.filters["when"] = _when
templates.env.filters["loss"] = _loss
templates.env.filters["hyperparameters"] = _hyperparameters


def render(request: Request, name: str, status_code: int = 200, **context) -> HTMLResponse:
    context.setdefault("caller", None)
    context.setdefault("error", None)
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(HEADERS)
    return response
