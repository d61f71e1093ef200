"""Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so the official client raises
its usual exceptions (AuthenticationError, NotFoundError, ConflictError, ...) with our message."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import Match


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 type: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.type = status, message, code, param, type


def not_found(kind: str, object_id: str) -> ApiError:
    # The same answer whether the object does not exist or belongs to another tenant.
    return ApiError(404, f"No such {kind}: {object_id}", code="not_found")


def _response(status: int, body: ErrorBody, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(ErrorResponse(error=body).model_dump(), status_code=status, headers=headers)


async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return _response(exc.status, ErrorBody(message=exc.message, type=exc.type, param=exc.param, code=exc.code),
                     headers)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return _response(exc.status_code, ErrorBody(message=str(exc.detail), type="invalid_request_error"), headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path. Starlette's own 405 names only the first matching route's,
    and each of our methods on a path is a route of its own."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


# Where pydantic tells union members apart it adds their type to the location; users never wrote those.
_TYPE_TAGS = {"int", "float", "str", "bool", "dict", "list", "none", "constrained-int", "constrained-float"}
_WHERE = {"body", "query", "path", "header"}


def _param(loc) -> str | None:
    parts = [str(p) for p in loc if p not in _WHERE and str(p) not in _TYPE_TAGS and "[" not in str(p)]
    return ".".join(parts) or None


def _describe(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown parameter"
    return error["msg"].removeprefix("Value error, ")


def _invalid_json(error: dict) -> str:
    """FastAPI puts the character where parsing failed in the error's loc, where a parameter's name would be."""
    at = [part for part in error["loc"] if isinstance(part, int)]
    return "the request body is not valid JSON" + (f" (at character {at[0]})" if at else "")


def describe_validation(errors: list[dict]) -> tuple[str | None, str]:
    """(the first bad parameter, "param: what would be right") from pydantic's errors; for a union, what each
    alternative expects. A body that is not JSON names no parameter."""
    if errors[0]["type"] == "json_invalid":
        return None, _invalid_json(errors[0])
    param = _param(errors[0]["loc"])
    message = " or ".join(dict.fromkeys(_describe(e) for e in errors if _param(e["loc"]) == param))
    return param, f"{param}: {message}" if param else message


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """400 like OpenAI (not FastAPI's 422), naming the first bad parameter and what would be right."""
    param, message = describe_validation(exc.errors())
    return _response(400, ErrorBody(message=message, type="invalid_request_error", param=param,
                                    code="invalid_parameter"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)


def links(param: str, *operation_ids: str) -> dict:
    """OpenAPI links from a created object's id to the operations that take it (clients and fuzzers follow them)."""
    return {name: {"operationId": name, "parameters": {param: "$response.body#/id"}} for name in operation_ids}


def documented(*statuses: int) -> dict:
    """`responses=` for a route: the error statuses it can answer with, all in the error shape."""
    return {status: {"model": ErrorResponse} for status in statuses}
