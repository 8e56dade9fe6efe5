"""One mapping from every error to the contract's envelope; never a stack trace in a body."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tekudasai.core.errors import AppError

log = logging.getLogger("tekudasai.errors")

HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}
HTTP_MESSAGES = {404: "Not found.", 405: "Method not allowed."}
# Text PostgreSQL cannot store (a NUL character, \u0000 in JSON): bad input, whatever the
# route and whichever path the statement took to the database.
UNSTORABLE_TEXT_STATES = frozenset({"22021", "22P05"})


def unstorable_text(exc: BaseException) -> bool:
    """Whether the database refused a value as text it cannot store (asyncpg's error, or
    SQLAlchemy's wrapping of it)."""
    seen: BaseException | None = exc
    for _ in range(4):  # the error, SQLAlchemy's wrappers, the driver's own
        if seen is None:
            return False
        if getattr(seen, "sqlstate", None) in UNSTORABLE_TEXT_STATES:
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def error_body(
    message: str, code: str, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "error", "message": message, "code": code}
    if errors:
        body["errors"] = errors
    return body


def wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/api") or path == "/metrics":
        return False
    return "text/html" in request.headers.get("accept", "")


def error_response(
    request: Request,
    status: int,
    message: str,
    code: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    request.scope["tk.error_code"] = code  # counted by the metrics middleware (errors by code)
    renderer = getattr(request.app.state, "render_error_page", None)
    if renderer is not None and wants_html(request):
        return renderer(request, status, message)  # type: ignore[no-any-return]
    if wants_html(request):
        return HTMLResponse(
            f"<!doctype html><title>{status}</title><h1>{status}</h1>", status, headers=headers
        )
    return JSONResponse(error_body(message, code, errors), status_code=status, headers=headers)


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or "body"


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        message = str(error.get("msg", "Invalid value"))
        if error.get("type") == "json_invalid":
            message = "Body is not valid JSON"
        errors.append({"field": _field_of(error.get("loc", ())), "message": message})
    return errors


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> Response:
        return error_response(
            request, exc.status_code, exc.message, exc.code, exc.errors, exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def request_validation(request: Request, exc: RequestValidationError) -> Response:
        errors = validation_errors(exc)
        first = errors[0] if errors else {"field": "body", "message": "Invalid request"}
        message = f"{first['field']}: {first['message']}"
        return error_response(request, 400, message, "VALIDATION_ERROR", errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        detail = exc.detail if isinstance(exc.detail, str) else None
        message = HTTP_MESSAGES.get(exc.status_code) or detail or "Request failed."
        return error_response(
            request, exc.status_code, message, code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        if unstorable_text(exc):
            message = "Text may not contain the NUL character."
            return error_response(request, 400, message, "VALIDATION_ERROR")
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "An unexpected error occurred.", "UNEXPECTED_ERROR")
