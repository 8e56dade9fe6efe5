"""The event stream as a plain ASGI response: it needs what StreamingResponse does not give —
a time limit on each write (a client that stops reading holds no more than the socket's
buffers and is cut), and an end chosen by the server (signed out, dropped)."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tekudasai.core.middleware import LONG_LIVED
from tekudasai.live.hub import Hub, Subscriber

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-store"),
    # nginx and similar proxies: pass each event on at once instead of buffering the body.
    (b"x-accel-buffering", b"no"),
]
# Reconnect after 3 s (EventSource's default is browser dependent).
HELLO = b"retry: 3000\n: connected\n\n"


class EventStream(Response):
    """Sends `replay`, then what the hub offers `sub` (its heartbeats included).

    A Response (so FastAPI passes it through as it is) that builds no body of its own."""

    media_type = "text/event-stream"

    def __init__(
        self,
        hub: Hub,
        sub: Subscriber,
        replay: list[tuple[int | None, bytes]],
        *,
        send_timeout_s: float,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.status_code = 200
        self.background: BackgroundTask | None = None
        self.extra_headers = extra_headers or []
        self.hub = hub
        self.sub = sub
        self.replay = replay
        self.send_timeout_s = send_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[LONG_LIVED] = True  # minutes on a page are not request latency
        self._loop = asyncio.get_running_loop()
        self.sub.writer = asyncio.current_task()
        watcher = asyncio.create_task(self._watch_disconnect(receive))
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [*HEADERS, *self.extra_headers],
                }
            )
            if await self._stream(send):
                # Ended by the server (signed out, shut down): end the body properly.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        send({"type": "http.response.body", "body": b"", "more_body": False}),
                        self.send_timeout_s,
                    )
        finally:
            watcher.cancel()
            self.hub.unsubscribe(self.sub)

    async def _write(self, send: Send, chunk: bytes) -> bool:
        # No timer per write (this runs once per event per stream: 500 streams are 500
        # writes per change): the hub's sweep cancels a write that has waited too long.
        sub = self.sub
        sub.writing_since = self._loop.time()
        try:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if sub.cut and task is not None and task.uncancel() == 0:
                # The client stopped reading: returning without finishing the response
                # makes the server close the connection.
                return False
            raise
        except OSError:
            sub.close("gone")
            return False
        finally:
            sub.writing_since = None
        return True

    async def _stream(self, send: Send) -> bool:
        """True when the server ended it and the response can be finished."""
        sub = self.sub
        if not await self._write(send, HELLO):
            return False
        # Events can commit out of id order, so a live event is skipped only when the replay
        # sent that very id (it was read both ways around the subscription), never for being
        # older than the last one sent.
        replayed = {event_id for event_id, _ in self.replay if event_id is not None}
        for _, chunk in self.replay:
            if not await self._write(send, chunk):
                return False
        while sub.closed is None:
            # No timer here: the hub's one heartbeat timer queues the idle streams' comments.
            item = await sub.queue.get()
            if item is None:
                break
            event_id, chunk = item
            if replayed and event_id in replayed:
                replayed.discard(event_id)
                continue
            if not await self._write(send, chunk):
                return False
        return sub.closed not in {"slow", "gone"}

    async def _watch_disconnect(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.sub.close("gone")
                return
