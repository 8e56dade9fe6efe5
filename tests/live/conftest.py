"""Live-update tests run against real servers: uvicorn on a real socket (in a thread, with its
own event loop), because ASGI test transports do not stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tekudasai.app import create_app
from tekudasai.db.session import Database
from tests.conftest import make_settings
from tests.factories import Person, person_fixture
from tests.tickets.conftest import GOOD_RESPONSE, make_form

reporter = person_fixture("user")
other = person_fixture("user")
agent = person_fixture("agent")
agent2 = person_fixture("agent")

# Quick clocks for tests: heartbeats, session re-checks, presence expiry, slow clients.
FAST = {
    "TK_LIVE_HEARTBEAT_S": "1",
    "TK_LIVE_RECHECK_S": "0.5",
    "TK_LIVE_PRESENCE_TTL_S": "2",
    "TK_LIVE_SEND_TIMEOUT_S": "2",
    "TK_RATE_LIMITS": "auth_account=off,auth_ip=off,tickets=off,forms=off,presence=5/minute",
}


@dataclass
class LiveServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread
    app: Any

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_live(db_url: str, data_dir: Path, **overrides: str) -> LiveServer:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = make_settings(db_url, data_dir, BETTER_AUTH_URL=base, **{**FAST, **overrides})
    app = create_app(settings, None)
    config = uvicorn.Config(
        app, log_level="warning", lifespan="on", access_log=False, timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(400):
        if server.started and app.state.live_hub.listening.is_set():
            break
        if not thread.is_alive():
            raise RuntimeError("the live server did not start")
        threading.Event().wait(0.05)
    else:
        raise RuntimeError("the live server did not start in 20 s")
    return LiveServer(url=base, server=server, thread=thread, app=app)


@pytest.fixture
def live_factory(db_url: str, tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    started: list[LiveServer] = []

    def start(**overrides: str) -> LiveServer:
        server = start_live(db_url, tmp_path / f"data{len(started)}", **overrides)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def live(live_factory: Callable[..., LiveServer]) -> LiveServer:
    return live_factory()


@pytest.fixture
async def form_id(database: Database) -> str:
    await make_form(database, form_id="live-form")
    return "live-form"


@dataclass
class Stream:
    """An open /api/events stream, read in the background into `events`."""

    response: httpx.Response
    events: list[dict[str, Any]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        current: dict[str, Any] = {}
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if "data" in current:
                        current["data"] = json.loads(current["data"])
                        self.events.append(current)
                        self.arrived.set()
                    current = {}
                elif line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    self.arrived.set()
                else:
                    name, _, value = line.partition(":")
                    current[name] = value.removeprefix(" ")
        except (httpx.HTTPError, asyncio.CancelledError):
            pass
        finally:
            self.ended.set()

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]

    async def wait_for(self, predicate: Callable[[Stream], bool], within: float = 10) -> None:
        async with asyncio.timeout(within):
            while not predicate(self):
                self.arrived.clear()
                if self.ended.is_set():
                    raise AssertionError(f"stream ended; events: {self.events}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.arrived.wait(), 0.5)


@contextlib.asynccontextmanager
async def open_stream(
    base: str, person: Person, headers: dict[str, str | bytes] | None = None
) -> AsyncIterator[Stream]:
    async with (
        httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10, read=60)) as http,
        http.stream(
            "GET",
            "/api/events",
            headers={**person.auth, "Accept": "text/event-stream", **(headers or {})},
        ) as response,
    ):
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response)
        task = asyncio.create_task(stream.read())
        try:
            await stream.wait_for(lambda s: "connected" in s.comments)
            yield stream
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def api(
    base: str, method: str, path: str, person: Person, body: dict[str, Any] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        return await http.request(method, path, json=body, headers=person.auth)


async def file_ticket(base: str, person: Person, form_id: str, summary: str = "Screen") -> int:
    response = await api(
        base,
        "POST",
        "/api/tickets/my",
        person,
        {"formId": form_id, "summary": summary, "formResponse": GOOD_RESPONSE},
    )
    assert response.status_code == 200, response.text
    return int(response.json()["data"]["id"])


async def file_ticket_seen(
    live: LiveServer, person: Person, form_id: str, summary: str = "Screen"
) -> int:
    """File a ticket and wait until the live server's hub has handed its event on: a stream
    opened afterwards then never gets it (one opened before the NOTIFY arrived would, as a
    live event: under load that made the tests' counts race)."""
    before = live.app.state.live_hub.last_event_id
    ticket = await file_ticket(live.url, person, form_id, summary)
    await until(lambda: live.app.state.live_hub.last_event_id > before)
    return ticket


async def until(predicate: Callable[[], bool], within: float = 10) -> None:
    """Wait for a state of the server, whose loop runs in another thread (no asyncio.Event
    crosses threads, so this polls)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out waiting for the server")
