"""Bad input and misbehaving clients: a client that never reads is dropped, presence for a
ticket the user cannot see is 404, presence floods are 429, and presence expires."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from tests.factories import Person
from tests.live.conftest import LiveServer, api, file_ticket, open_stream, until

BIG = "x" * 19_000


def silent_client(base: str, person: Person) -> socket.socket:
    """Asks for the stream, then never reads: a small receive buffer fills at once."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    request = (
        f"GET /api/events HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {person.token}\r\nAccept: text/event-stream\r\n\r\n"
    )
    sock.sendall(request.encode())
    return sock


def drain_until_closed(sock: socket.socket, timeout: float) -> tuple[int, bool]:
    """Read everything the server still sends; (bytes read, whether it closed)."""
    sock.settimeout(0.5)
    total = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            return total, True
        total += len(chunk)
    return total, False


@pytest.mark.slow
async def test_a_client_that_never_reads_is_dropped_not_buffered(
    live_factory: Any, form_id: str, reporter: Person, agent: Person
) -> None:
    live: LiveServer = live_factory(TK_LIVE_QUEUE_SIZE="4")
    hub = live.app.state.live_hub
    ticket = await file_ticket(live.url, reporter, form_id)
    sock = silent_client(live.url, reporter)
    try:
        await until(lambda: len(hub.subscribers) == 1, within=5)
        async with open_stream(live.url, agent) as reader:  # a healthy client beside it
            posted = 0

            async def post(n: int) -> None:
                response = await api(
                    live.url,
                    "POST",
                    f"/api/tickets/{ticket}/comments",
                    agent,
                    {"body": f"{n}{BIG}"},
                )
                assert response.status_code == 200, response.text

            # Several MB: what the kernel buffers for a connection before writes block.
            while not hub.dropped and posted < 400:
                await asyncio.gather(*(post(posted + k) for k in range(10)))
                posted += 10
            await until(lambda: hub.dropped > 0)
            await asyncio.gather(*(post(posted + k) for k in range(10)))  # after the drop
            posted += 10
            # The reading client got every one of them.
            await reader.wait_for(lambda s: len(s.of("comment.created")) == posted, within=30)
        received, closed = await asyncio.to_thread(drain_until_closed, sock, 10)
        assert closed, "the server kept the silent client's connection open"
        assert hub.dropped == 1
        assert all(s.closed is None for s in hub.subscribers)
        # It got what the buffers held before the drop, not what came after.
        assert 0 < received < posted * len(BIG)
    finally:
        sock.close()


async def test_presence_is_sent_to_agents_answered_with_the_others_and_expires(
    live: LiveServer, form_id: str, reporter: Person, agent: Person, agent2: Person
) -> None:
    ticket = await file_ticket(live.url, reporter, form_id)
    async with (
        open_stream(live.url, agent2) as watcher,
        open_stream(live.url, reporter) as customer,
    ):
        response = await api(
            live.url, "POST", f"/api/tickets/{ticket}/presence", agent, {"state": "viewing"}
        )
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert data["me"]["state"] == "viewing" and data["others"] == []
        await watcher.wait_for(lambda s: bool(s.of("presence")))
        event = watcher.of("presence")[0]
        assert "id" not in event  # not resumable: presence is repeated instead
        assert event["data"]["ticketId"] == ticket
        assert event["data"]["name"] == agent.name and event["data"]["state"] == "viewing"
        assert event["data"]["expiresAt"]

        # The second agent arrives: told who is already there.
        second = await api(
            live.url, "POST", f"/api/tickets/{ticket}/presence", agent2, {"state": "replying"}
        )
        others = second.json()["data"]["others"]
        assert [(o["userId"], o["state"]) for o in others] == [(agent.user.id, "viewing")]
        await asyncio.sleep(0.3)
        assert customer.of("presence") == []  # customers are not told who is looking

    await asyncio.sleep(2.2)  # TK_LIVE_PRESENCE_TTL_S=2 in these tests
    later = await api(
        live.url, "POST", f"/api/tickets/{ticket}/presence", agent2, {"state": "viewing"}
    )
    assert later.json()["data"]["others"] == []


async def test_presence_bad_input(
    live: LiveServer, form_id: str, reporter: Person, agent: Person
) -> None:
    ticket = await file_ticket(live.url, reporter, form_id)
    path = f"/api/tickets/{ticket}/presence"
    missing = await api(
        live.url, "POST", "/api/tickets/999999/presence", agent, {"state": "viewing"}
    )
    assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"
    customer = await api(live.url, "POST", path, reporter, {"state": "viewing"})
    assert customer.status_code == 404  # their own ticket, but presence is for agents
    bad = await api(live.url, "POST", path, agent, {"state": "sleeping"})
    assert bad.status_code == 400 and bad.json()["code"] == "VALIDATION_ERROR"
    # A flood: presence=5/minute in these tests.
    codes = [
        (await api(live.url, "POST", path, agent, {"state": "viewing"})).status_code
        for _ in range(8)
    ]
    assert codes[:3] == [200, 200, 200] and codes[-1] == 429, codes
    flooded = await api(live.url, "POST", path, agent, {"state": "viewing"})
    assert flooded.status_code == 429 and int(flooded.headers["Retry-After"]) >= 1


@pytest.mark.slow
async def test_a_write_blocked_longer_than_the_send_timeout_is_cut(
    live_factory: Any, form_id: str, reporter: Person, agent: Person
) -> None:
    # A queue too long to fill: only the hub's sweep of blocked writes can drop the client.
    live: LiveServer = live_factory(TK_LIVE_QUEUE_SIZE="100000", TK_LIVE_SEND_TIMEOUT_S="1")
    hub = live.app.state.live_hub
    ticket = await file_ticket(live.url, reporter, form_id)
    sock = silent_client(live.url, reporter)
    try:
        await until(lambda: len(hub.subscribers) == 1, within=5)
        silent = next(iter(hub.subscribers))
        async with open_stream(live.url, agent) as reader:
            posted = 0
            while not hub.dropped and posted < 400:
                await asyncio.gather(
                    *(
                        api(
                            live.url,
                            "POST",
                            f"/api/tickets/{ticket}/comments",
                            agent,
                            {"body": f"{posted + k}{BIG}"},
                        )
                        for k in range(10)
                    )
                )
                posted += 10
            await until(lambda: hub.dropped > 0, within=10)
            await reader.wait_for(lambda s: len(s.of("comment.created")) == posted, within=30)
        _, closed = await asyncio.to_thread(drain_until_closed, sock, 10)
        assert closed, "the server kept the blocked client's connection open"
        assert silent.cut and silent.closed == "slow"
        assert silent.queue.qsize() < 100000
        assert all(s.closed is None for s in hub.subscribers)
    finally:
        sock.close()
