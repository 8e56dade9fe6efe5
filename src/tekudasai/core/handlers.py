"""One mapping from every error to the contract's envelope; never a stack trace in a body."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import exc as sa_exc
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
# The server is gone, going, or full: connection exceptions (08…), operator intervention
# (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now), too many connections.
UNAVAILABLE_STATE_CLASSES = ("08", "57P0", "53300")
RETRY_AFTER_S = "5"
# What the database path can raise: SQLAlchemy's wrappers, asyncpg's own errors (statements
# sent straight to the driver), and the OS errors of a refused or vanished socket, which
# neither library wraps when a new connection is opened.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.DBAPIError,
    sa_exc.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    UnicodeEncodeError,
)
_DATABASE_MODULES = ("asyncpg", "sqlalchemy")


def _chain(exc: BaseException) -> list[BaseException]:
    """The error, SQLAlchemy's wrappers and the driver's own, cause by cause."""
    found: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(found) < 6:
        found.append(seen)
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return found


def unstorable_text(exc: BaseException) -> bool:
    """Whether the database (or the driver encoding for it) refused a value as text it cannot
    store: NUL (22021/22P05) or a lone surrogate (not encodable as UTF-8)."""
    for seen in _chain(exc):
        if getattr(seen, "sqlstate", None) in UNSTORABLE_TEXT_STATES:
            return True
        if isinstance(seen, UnicodeEncodeError) and "surrogate" in str(seen.reason):
            return True
    return False


def _raised_by_database_code(tb: TracebackType | None) -> bool:
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(_DATABASE_MODULES):
            return True
        tb = tb.tb_next
    return False


def database_unavailable(exc: BaseException) -> bool:
    """Whether the error means the database cannot be reached now (not that a statement is bad)."""
    for seen in _chain(exc):
        if isinstance(seen, sa_exc.TimeoutError):
            return True  # no pooled connection came free (or none could be opened) in time
        if isinstance(seen, sa_exc.DBAPIError) and seen.connection_invalidated:
            return True
        state = getattr(seen, "sqlstate", None)
        if isinstance(state, str) and state.startswith(UNAVAILABLE_STATE_CLASSES):
            return True
        # The driver's view of a connection that broke mid-operation (the server went away).
        if isinstance(
            seen,
            asyncpg.InterfaceError
            | asyncpg.InternalClientError
            | asyncpg.exceptions.ConnectionDoesNotExistError,
        ):
            return True
        if isinstance(seen, OSError) and _raised_by_database_code(seen.__traceback__):
            return True
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


# The request state key of a callable (request -> AppError | None) that a dependency leaves
# when it defers the caller's lookup to the route's read (accounts.dependencies.Caller): a
# request that fails validation first hears what the lookup would have answered (401, say),
# as from a route whose principal dependency ran before validation.
VALIDATION_GATE = "tk_validation_gate"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> Response:
        return error_response(
            request, exc.status_code, exc.message, exc.code, exc.errors, exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def request_validation(request: Request, exc: RequestValidationError) -> Response:
        gate = request.scope.get("state", {}).get(VALIDATION_GATE)
        refusal = await gate(request) if gate is not None else None
        if refusal is not None:
            return await app_error(request, refusal)
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

    async def database_error(request: Request, exc: Exception) -> Response:
        # Registered per class, so these answers are made by Starlette's ExceptionMiddleware:
        # unlike the catch-all below (ServerErrorMiddleware re-raises after answering, and
        # uvicorn then logs a traceback and drops the keep-alive connection) nothing is re-raised.
        if unstorable_text(exc):
            return error_response(request, 400, UNSTORABLE_MESSAGE, "VALIDATION_ERROR")
        if database_unavailable(exc):
            log.warning(
                "database unavailable on %s %s: %s",
                request.method,
                request.url.path,
                type(exc).__name__,
            )
            return error_response(
                request,
                503,
                "The database is not available right now; try again shortly.",
                "SERVICE_UNAVAILABLE",
                headers={"Retry-After": RETRY_AFTER_S},
            )
        return unexpected_response(request, exc)

    for error_class in DATABASE_ERRORS:
        app.add_exception_handler(error_class, database_error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        if unstorable_text(exc):
            return error_response(request, 400, UNSTORABLE_MESSAGE, "VALIDATION_ERROR")
        return unexpected_response(request, exc)


UNSTORABLE_MESSAGE = "Must not contain NUL characters or broken Unicode (unpaired surrogates)."


def unexpected_response(request: Request, exc: BaseException) -> Response:
    log.error(
        "unhandled error on %s %s",
        request.method,
        request.url.path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return error_response(request, 500, "An unexpected error occurred.", "UNEXPECTED_ERROR")
