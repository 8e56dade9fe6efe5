"""Webhook tests: a real HTTP receiver on loopback, settings that allow it, and a worker."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tekudasai.config import Settings
from tekudasai.db.session import Database
from tekudasai.jobs.worker import Backoff, Worker
from tekudasai.tasks import TASKS
from tests.conftest import make_settings
from tests.factories import person_fixture
from tests.tickets.conftest import file_ticket, form  # noqa: F401 - fixtures used here

admin = person_fixture("admin")
agent = person_fixture("agent")
reporter = person_fixture("user")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


# (request number from 1, request) -> (status, body, delay in seconds before answering)
Behaviour = Callable[[int, Received], tuple[int, bytes, float]]


def always_ok(_n: int, _request: Received) -> tuple[int, bytes, float]:
    return 200, b"ok", 0.0


@dataclass
class Receiver:
    """A real HTTP server in its own thread, recording every POST."""

    behaviour: Behaviour = always_ok
    requests: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                got = Received(
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length),
                )
                with lock:
                    receiver.requests.append(got)
                    n = len(receiver.requests)
                status, body, delay = receiver.behaviour(n, got)
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("content-length", str(len(body)))
                    if 300 <= status < 400:
                        self.send_header("location", "http://127.0.0.1:1/elsewhere")
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Receivers are on loopback: the address rule is lifted, except in the guard tests."""
    return make_settings(db_url, tmp_path / "data", TK_WEBHOOK_ALLOW_PRIVATE="true")


async def wait_until(
    condition: Callable[[], Awaitable[bool] | bool], seconds: float = 30.0, step: float = 0.05
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(step)
    raise AssertionError("timed out")


@pytest.fixture
async def worker(database: Database, settings: Settings) -> AsyncIterator[Worker]:
    """The real queue with every task, retrying after 0.2 s, 0.4 s … instead of 10 s, 20 s …"""
    running = Worker(
        database, settings, TASKS, concurrency=2, poll=0.2, backoff=Backoff(base=0.2, cap=1.0)
    )
    task = asyncio.create_task(running.run())
    yield running
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def deliveries(database: Database) -> list[dict[str, Any]]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(text("SELECT * FROM webhook_deliveries ORDER BY id"))
        return [dict(r._mapping) for r in rows]


async def make_webhook(
    client: httpx.AsyncClient, auth: dict[str, str], url: str, events: list[str], **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/webhooks", json={"url": url, "events": events, **extra}, headers=auth
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]
