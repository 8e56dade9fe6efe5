"""/api/events on a real `tekudasai serve --workers 2`: every stream gets each change,
whichever worker holds it and whichever worker made the change (NOTIFY crosses processes),
and SIGTERM ends the streams at once instead of holding the shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tekudasai.db.session import Database
from tests.conftest import TEST_SECRET
from tests.factories import Person
from tests.live.conftest import Stream, file_ticket
from tests.monitoring.test_serve import free_port, wait_ready

pytestmark = pytest.mark.slow

STREAMS = 6


def start_serve(tmp_path: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tekudasai", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "serve.stderr").open("wb"),
    )


async def test_serve_with_two_workers_fans_out_and_stops_promptly(
    tmp_path: Path, db_url: str, database: Database, form_id: str, reporter: Person
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TK_", "DATABASE_URL"))}
    env.update(
        DATABASE_URL=db_url,
        TK_DATA_DIR=str(tmp_path / "data"),
        BETTER_AUTH_SECRET=TEST_SECRET,
        TK_RATE_LIMITS="off",
        TK_BACKGROUND_JOBS="false",
    )
    process = start_serve(tmp_path, port, env)
    base = f"http://127.0.0.1:{port}"
    streams: list[Stream] = []
    async with contextlib.AsyncExitStack() as stack:
        try:
            await asyncio.to_thread(wait_ready, base)
            for _ in range(STREAMS):
                # A connection each: the kernel spreads them over the two workers.
                client = await stack.enter_async_context(
                    httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10, read=60))
                )
                response = await stack.enter_async_context(
                    client.stream(
                        "GET",
                        "/api/events",
                        headers={**reporter.auth, "Accept": "text/event-stream"},
                    )
                )
                assert response.status_code == 200
                stream = Stream(response)
                task = asyncio.create_task(stream.read())
                stack.callback(task.cancel)
                await stream.wait_for(lambda s: "connected" in s.comments)
                streams.append(stream)

            # Filed through whichever worker takes the request: every stream sees it.
            ticket = await file_ticket(base, reporter, form_id, "Across workers")
            for stream in streams:
                await stream.wait_for(lambda s: bool(s.of("ticket.created")))
                event = stream.of("ticket.created")[0]["data"]
                assert event["ticketId"] == ticket and event["summary"] == "Across workers"

            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            for stream in streams:
                async with asyncio.timeout(10):
                    await stream.ended.wait()
            await asyncio.to_thread(process.wait, 30)
            # Well inside the 20 s a shutdown waits for open responses.
            assert time.monotonic() - started < 10, time.monotonic() - started
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
