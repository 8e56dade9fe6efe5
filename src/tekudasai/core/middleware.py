"""Pure ASGI middleware (cheaper than BaseHTTPMiddleware): request log line and body limits."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tekudasai.core.handlers import error_body

access_log = logging.getLogger("tekudasai.access")

JSON_BODY_LIMIT = 1024 * 1024


class BodyTooLarge(StarletteHTTPException):
    """An HTTPException so FastAPI's body parsing re-raises it instead of turning it into a 400."""

    def __init__(self, message: str) -> None:
        super().__init__(status_code=413, detail=message)


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestContextMiddleware:
    """Gives each request an id (X-Request-ID) and writes one access-log line when it ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            access_log.info(
                "%s %s %s %.1fms",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
                extra={"request_id": request_id, "status": status, "path": scope["path"]},
            )


class BodyLimitMiddleware:
    """Bodies above 1 MiB get 413 before the app reads them; uploads have their own cap."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        upload_limit: int,
        upload_prefixes: tuple[str, ...] = ("/api/uploads", "/api/v1/uploads"),
    ) -> None:
        self.app = app
        self.upload_limit = upload_limit
        self.upload_prefixes = upload_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        is_upload = path.startswith(self.upload_prefixes) or _header(
            scope, b"content-type", ""
        ).startswith("multipart/")
        # Multipart framing adds a little to the file itself.
        limit = self.upload_limit + 64 * 1024 if is_upload else JSON_BODY_LIMIT
        declared = _header(scope, b"content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            await _send_json(
                send,
                413,
                error_body(_too_large(is_upload, limit), "PAYLOAD_TOO_LARGE"),
                [(b"connection", b"close")],
            )
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(_too_large(is_upload, limit))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if not response_started:
                await _send_json(
                    send,
                    413,
                    error_body(exc.detail, "PAYLOAD_TOO_LARGE"),
                    [(b"connection", b"close")],
                )


def _too_large(is_upload: bool, limit: int) -> str:
    if is_upload:
        return f"The file is larger than the {limit // (1024 * 1024)} MiB limit."
    return "The request body is larger than 1 MiB."


def _header(scope: Scope, name: bytes, default: str | None = None) -> Any:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return default
