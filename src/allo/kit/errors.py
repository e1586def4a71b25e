"""One error shape for the whole API: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class BadRequest(AppError):
    status_code = 400
    code = "bad_request"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class Unprocessable(AppError):
    status_code = 422
    code = "validation_error"


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: Mapping[str, str] | None = None
) -> Response:
    headers = {**({"WWW-Authenticate": "Bearer"} if status == 401 else {}), **(headers or {})}
    return Response(
        orjson.dumps(error_body(code, message, details)),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        details.append(
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "type": err.get("type"),
                "message": err.get("msg"),
            }
        )
    return details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> Response:
        return error_response(exc.status_code, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> Response:
        details = _validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            return error_response(400, "malformed_json", "The request body is not valid JSON.", details)
        return error_response(422, "validation_error", "The request is not valid.", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 400 and "parsing the body" in message:
            code, message = (
                "malformed_body",
                "The request body could not be decoded (JSON in UTF-8 expected).",
            )
        # Keep the exception's headers: a 405 must say which methods are allowed (Allow).
        return error_response(exc.status_code, code, message, headers=exc.headers)

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> Response:
        if is_transient(exc):
            # The transaction was rolled back whole: nothing was written, the same request may be sent again.
            logger.warning(
                "transient database conflict on %s %s: %s", request.method, request.url.path, exc.orig
            )
            return error_response(
                503,
                "busy_try_again",
                "The request met a concurrent change and was not applied; send it again.",
                headers={"Retry-After": "1"},
            )
        logger.exception("database error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "An unexpected error occurred.")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "An unexpected error occurred.")


# PostgreSQL: deadlock detected, serialization failure; SQLite: the write lock was not obtained in time.
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


def is_transient(exc: DBAPIError) -> bool:
    """A conflict between concurrent transactions that a retry resolves."""
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state is None and orig is not None:
        state = getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    return state in _TRANSIENT_SQLSTATES or "database is locked" in str(orig)
