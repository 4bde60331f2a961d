"""Errors as RFC 9457 problem details (``application/problem+json``), with reason codes.

Every refusal of the HTTP API carries the same stable kebab-case reason codes as the queues
(``docs/reason-codes.md``) in ``reason``, and ``type`` is ``urn:omvant:reason:<code>``. Errors
outside ``/v1`` (the web console's pages) keep FastAPI's own handling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from workers.reasons import Reason

MEDIA_TYPE = "application/problem+json"

_BY_STATUS = {
    401: Reason.API_KEY_MISSING,
    404: Reason.NOT_FOUND,
    405: Reason.METHOD_NOT_ALLOWED,
    413: Reason.REQUEST_TOO_LARGE,
    415: Reason.UNSUPPORTED_MEDIA_TYPE,
    429: Reason.RATE_LIMITED,
}


class FieldError(BaseModel):
    """Which field broke which rule."""

    field: str
    rule: str
    message: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, with Omvänt's reason code."""

    type: str
    title: str
    status: int
    detail: str
    reason: str
    instance: str | None = None
    errors: list[FieldError] | None = None


class Problem(Exception):
    """Raised by the API's functions and routes; answered as problem details."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        *,
        errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = str(reason)
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}


def problem_response(
    request: Request,
    status: int,
    reason: str,
    detail: str,
    *,
    errors: Sequence[FieldError] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The problem-details response for one refusal."""
    body = ProblemDetails(
        type=f"urn:omvant:reason:{reason}",
        title=str(reason).replace("-", " ").capitalize(),
        status=status,
        detail=detail,
        reason=str(reason),
        instance=request.url.path,
        errors=list(errors) or None,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/v1")


def field_errors(errors: Sequence[Any], *, drop: int = 1) -> list[FieldError]:
    """pydantic's errors as field/rule/message, the location without its first ``drop`` parts
    (``body``)."""
    found = []
    for error in errors[:20]:
        loc = [str(p) for p in error.get("loc", ())][drop:]
        where = ".".join(f"[{p}]" if p.isdigit() else p for p in loc).replace(".[", "[")
        found.append(
            FieldError(field=where or "(body)", rule=str(error["type"]), message=error["msg"])
        )
    return found


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(
        request, exc.status, exc.reason, exc.detail, errors=exc.errors, headers=exc.headers
    )


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if not _is_api(request):
        return await request_validation_exception_handler(request, exc)
    errors = list(exc.errors())
    if any(e.get("type") == "too_long" and len(e.get("loc", ())) <= 2 for e in errors):
        reason, detail = Reason.TOO_MANY_RECORDS, "at most 1,000 records in one request"
    else:
        reason, detail = Reason.INVALID_PAYLOAD, "the request does not match its schema"
    return problem_response(request, 422, reason, detail, errors=field_errors(errors))


async def http_error(request: Request, exc: Exception) -> Response:
    """An HTTP error outside the console's pages: problem details under ``/v1``, else
    FastAPI's own answer."""
    assert isinstance(exc, StarletteHTTPException)
    if not _is_api(request):
        return await http_exception_handler(request, exc)
    reason = _BY_STATUS.get(exc.status_code, Reason.INVALID_PAYLOAD)
    detail = exc.detail if isinstance(exc.detail, str) else reason
    return problem_response(
        request, exc.status_code, reason, detail, headers=dict(exc.headers or {})
    )


def install(app: FastAPI) -> None:
    """Answer the API's errors as problem details."""
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, http_error)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "model": ProblemDetails,
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
        "description": description,
    }
    for status, description in {
        401: "No or an invalid API key (`api-key-missing`, `api-key-invalid`)",
        413: "The body is over the size limit (`request-too-large`)",
        422: "The request breaks its schema or rules (the reason says which)",
        429: "Too many requests for the key (`rate-limited`); see `Retry-After`",
    }.items()
}
"""The refusals every authenticated route can give, for the OpenAPI document."""
