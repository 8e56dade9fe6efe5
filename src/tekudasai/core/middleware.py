"""Pure ASGI middleware (cheaper than BaseHTTPMiddleware): the request edge.

`RequestContextMiddleware` is the one wrapper of `send`: request id, access log, and the
observer (metrics) get the status and duration from it. `BodyLimitMiddleware` caps bodies and
refuses, before any route runs, input no route can use: text PostgreSQL cannot store (NUL,
unpaired surrogates) in the path, the query or a JSON body, and JSON nested deeper than any
client needs (deep nesting ends in RecursionError wherever it is walked).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import time
from collections.abc import Callable
from itertools import accumulate, count
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tekudasai.core.handlers import UNSTORABLE_MESSAGE, error_body

access_log = logging.getLogger("tekudasai.access")


class _RequestIds:
    """Request ids unique across workers, nodes and restarts: 16 random hex digits drawn once
    per process (again in a forked child), then a counter. A uuid4 per request read the
    kernel's random source every time (1.3 % of a busy worker's samples); a request id
    correlates log lines and is no secret."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.numbers = count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.numbers):016x}"


new_request_id = _RequestIds()

JSON_BODY_LIMIT = 1024 * 1024
UPLOAD_PATHS = frozenset({"/api/uploads", "/api/v1/uploads"})
# Form definitions, answers and every other body the API takes are a few levels deep.
MAX_JSON_DEPTH = 32
FORM_ANSWERS_KEY = "formResponse"
# A JSON escape PostgreSQL cannot store: \u0000, or a surrogate (checked for pairing below).
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
FORWARDED_HEADERS = (b"x-forwarded-for", b"forwarded", b"x-real-ip")

Observer = Callable[[Scope, int, float], None]


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


async def send_error(
    scope: Scope,
    send: Send,
    status: int,
    body: dict[str, Any],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """An error envelope answered by middleware; its code is counted like the handlers' are."""
    scope["tk.error_code"] = body.get("code")
    await _send_json(send, status, body, headers)


async def _refuse_too_large(scope: Scope, send: Send, message: str) -> None:
    # Close the connection: the rest of an oversized body is not worth reading.
    await send_error(
        scope, send, 413, error_body(message, "PAYLOAD_TOO_LARGE"), [(b"connection", b"close")]
    )


# Headers a dependency adds to whatever response the request ends with (add_response_headers).
EXTRA_HEADERS = "tk.extra_headers"


def add_response_headers(scope: Scope, headers: list[tuple[bytes, bytes]]) -> None:
    """Send `headers` with this request's response, whichever response that is, unless it
    sets a header of that name itself.

    FastAPI hands dependencies a "sub-response" for this, but drops its headers when the route
    returns a Response of its own (the ticket API, the pages): a renewed session cookie set
    there never reached the browser.
    """
    scope.setdefault("state", {}).setdefault(EXTRA_HEADERS, []).extend(headers)


# Set in the scope by a response that lasts as long as the client stays (an event stream):
# its duration is time on a page, not latency, so it stays out of the request metrics.
LONG_LIVED = "tk.long_lived"


class RequestContextMiddleware:
    """Request id (X-Request-ID), one access-log line, and the observer's status and timing.

    The only middleware that wraps `send`: metrics used to wrap it a second time.
    """

    def __init__(self, app: ASGIApp, *, observer: Observer | None = None) -> None:
        self.app = app
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                headers = [*message["headers"], (b"x-request-id", request_id.encode())]
                added = state.get(EXTRA_HEADERS)
                if added:
                    # A header the response sets itself wins: a sign-in or sign-out sets the
                    # session cookie, and the renewal of the session it replaces must not.
                    present = {name for name, _ in headers}
                    headers += [header for header in added if header[0] not in present]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            if self.observer is not None and not scope.get(LONG_LIVED):
                self.observer(scope, status, seconds)
            access_log.info(
                "%s %s %s %.1fms",
                scope["method"],
                scope["path"],
                status,
                seconds * 1000,
                extra={"request_id": request_id, "status": status, "path": scope["path"]},
            )


class BodyLimitMiddleware:
    """1 MiB for every body except the upload endpoints' (their own cap), and unusable input
    refused with 400 before the app sees it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        upload_limit: int,
        upload_paths: frozenset[str] = UPLOAD_PATHS,
        path_limits: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.upload_limit = upload_limit
        self.upload_paths = upload_paths
        # POST paths that take a raw body of their own size (inbound mail): path -> bytes.
        self.path_limits = path_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = unstorable_in_url(scope)
        if problem is not None:
            await send_error(scope, send, 400, _validation_body(problem))
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        # By path only: the content type is the client's claim and must not lift the cap.
        is_upload = scope["method"] == "POST" and path.rstrip("/") in self.upload_paths
        # Multipart framing adds a little to the file itself.
        limit = self.upload_limit + 64 * 1024 if is_upload else JSON_BODY_LIMIT
        own_limit = self.path_limits.get(path.rstrip("/")) if scope["method"] == "POST" else None
        if own_limit is not None:
            is_upload, limit = True, own_limit
        declared = _header(scope, b"content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            await _refuse_too_large(scope, send, _too_large(is_upload, limit, own_limit))
            return
        if not is_upload and _is_json(scope):
            await self._json(scope, receive, send, limit)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(_too_large(is_upload, limit, own_limit))
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
                await _refuse_too_large(scope, send, exc.detail)

    async def _json(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Read the (≤ 1 MiB) JSON body, check it, and hand it on whole."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _refuse_too_large(scope, send, _too_large(False, limit))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        refusal = check_json_body(body)
        if refusal is not None:
            await send_error(scope, send, 400, refusal)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # then only http.disconnect

        await self.app(scope, replay, send)


def unstorable_in_url(scope: Scope) -> str | None:
    """The part of the URL that carries a NUL character, if any."""
    if "\x00" in scope["path"]:
        return "path"
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for pair in query.split(b"&"):
            name, _, value = pair.partition(b"=")
            if b"\x00" in unquote_to_bytes(value.replace(b"+", b" ")):
                return name.decode("latin-1") or "query"
        return "query"
    return None


def check_json_body(body: bytes) -> dict[str, Any] | None:
    """The 400 body for JSON that is too deep or holds unstorable text; None when fine."""
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and json_depth(body) > MAX_JSON_DEPTH:
        return _nesting_body("body")
    if _SUSPECT_ESCAPE.search(body) is None:
        return None  # the common case: no escape that could decode to unstorable text
    try:
        value = json.loads(body)
    except ValueError:
        return None  # not JSON: the route's own parsing says so
    where = unstorable_path(value)
    if where is None:
        return None
    if len(where) >= 2 and where[0] == FORM_ANSWERS_KEY:
        # Every answer that cannot be stored, as the form engine lists each bad answer.
        answers: dict[str, Any] = value[FORM_ANSWERS_KEY]
        errors = [
            {"field": str(name), "message": UNSTORABLE_MESSAGE}
            for name, answer in answers.items()
            if _UNSTORABLE.search(name) or unstorable_path(answer) is not None
        ]
        return error_body("The form response is not valid.", "INVALID_FORM_DATA", errors)
    return _validation_body(field_path(where))


def field_path(parts: tuple[Any, ...]) -> str:
    """`("elements", 0, "label")` → `elements[0].label`, as the forms service names fields."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def json_depth(body: bytes) -> int:
    """How deep brackets nest outside strings (exact for valid JSON)."""
    skeleton = _STRINGS.sub(b"", body).translate(None, _NOT_BRACKETS)
    steps = (1 if byte in b"[{" else -1 for byte in skeleton)
    return max(accumulate(steps, initial=0))


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def unstorable_path(value: Any, path: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    """Where (keys and indexes) a decoded JSON value holds unstorable text, or None."""
    if isinstance(value, str):
        return path if _UNSTORABLE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _UNSTORABLE.search(key):
                return (*path, key.encode("utf-8", "replace").decode())
            found = unstorable_path(item, (*path, key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = unstorable_path(item, (*path, index))
            if found is not None:
                return found
    return None


def nested_too_deep(text: str) -> bool:
    """For JSON carried inside a form field (the web form builder posts its elements so)."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    return json_depth(text.encode("utf-8", "replace")) > MAX_JSON_DEPTH


def _validation_body(field: str) -> dict[str, Any]:
    return error_body(
        f"{field}: {UNSTORABLE_MESSAGE}",
        "VALIDATION_ERROR",
        [{"field": field, "message": UNSTORABLE_MESSAGE}],
    )


def _nesting_body(field: str) -> dict[str, Any]:
    message = f"JSON may be nested at most {MAX_JSON_DEPTH} levels deep."
    return error_body(
        f"{field}: {message}", "VALIDATION_ERROR", [{"field": field, "message": message}]
    )


def _is_json(scope: Scope) -> bool:
    kind = str(_header(scope, b"content-type", "")).split(";", 1)[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def _too_large(is_upload: bool, limit: int, own_limit: int | None = None) -> str:
    if own_limit is not None:
        return f"The message is larger than the {own_limit // (1024 * 1024)} MiB limit."
    if is_upload:
        return f"The file is larger than the {limit // (1024 * 1024)} MiB limit."
    return "The request body is larger than 1 MiB."


def _header(scope: Scope, name: bytes, default: str | None = None) -> Any:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return default


def is_loopback_client(scope: Scope) -> bool:
    """The peer is loopback and no forwarding header names another client.

    Behind a proxy on the same host the peer is always loopback; only the forwarding headers
    say who the client really is, so any that name a non-loopback address count against.
    """
    client = scope.get("client")
    if not client or not _loopback(client[0]):
        return False
    for key, value in scope.get("headers", []):
        if key not in FORWARDED_HEADERS:
            continue
        for address in _forwarded_addresses(key, value.decode("latin-1")):
            if not _loopback(address):
                return False
    return True


def _forwarded_addresses(header: bytes, value: str) -> list[str]:
    if header != b"forwarded":
        return [part.strip() for part in value.split(",") if part.strip()]
    found = []
    for element in value.split(","):
        for pair in element.split(";"):
            key, _, item = pair.strip().partition("=")
            if key.lower() == "for":
                item = item.strip('"')
                if item.startswith("["):
                    item = item[1:].split("]", 1)[0]
                elif item.count(":") == 1:
                    item = item.split(":", 1)[0]
                found.append(item)
    return found


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
