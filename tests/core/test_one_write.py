"""The worker's HTTP protocol sends a response's head and first body chunk in one write, on a
real loopback connection, and loses nothing on the ways a response can go."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from tekudasai.core.runtime import HeaderTimeoutProtocol


class CountedWrites:
    """Between the protocol's transport and the socket: records each send the server makes."""

    def __init__(self, transport: Any, sent: list[bytes]) -> None:
        self._transport = transport
        self._sent = sent

    def write(self, data: bytes) -> None:
        self._sent.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/upload":  # reads its body (the client asked for 100 Continue first)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        payload = b"got " + body
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(payload)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": payload})
        return
    if path == "/stream":  # the head, then chunks produced over time
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.05)
        for chunk in (b"one", b"two"):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"5")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b"hello"})


@asynccontextmanager
async def serving(sent: list[bytes]) -> AsyncIterator[int]:
    config = Config(app, log_level="warning", lifespan="off")
    config.load()
    state = ServerState()

    def protocol() -> HeaderTimeoutProtocol:
        made = HeaderTimeoutProtocol(config, state, {})
        connection_made = made.connection_made

        def counted(transport: Any) -> None:
            connection_made(transport)
            made.one_write._transport = CountedWrites(made.one_write._transport, sent)  # type: ignore[assignment]

        made.connection_made = counted  # type: ignore[method-assign]
        return made

    server = await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for connection in list(state.connections):
            connection.shutdown()
        await server.wait_closed()


async def exchange(port: int, request: bytes, until: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    received = b""
    while until not in received:
        chunk = await asyncio.wait_for(reader.read(65536), 5)
        assert chunk, received
        received += chunk
    writer.close()
    return received


async def test_head_and_body_leave_in_one_write() -> None:
    sent: list[bytes] = []
    async with serving(sent) as port:
        response = await exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", b"hello")
        again = await exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", b"hello")
    assert response.startswith(b"HTTP/1.1 200 OK\r\n") and response.endswith(b"\r\n\r\nhello")
    assert again == response
    assert len(sent) == 2, sent  # one per response: without the hold, head and body apart
    assert all(data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello") for data in sent)


async def test_keep_alive_responses_stay_in_order() -> None:
    sent: list[bytes] = []
    async with serving(sent) as port:
        two = b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /stream HTTP/1.1\r\nHost: t\r\n\r\n"
        received = await exchange(port, two, b"0\r\n\r\n")
    first, _, second = received.partition(b"hello")
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200")
    assert b"3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n" in second


async def test_a_head_whose_body_comes_later_is_not_kept_back() -> None:
    sent: list[bytes] = []
    async with serving(sent) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        # The app waits 50 ms before its first chunk: the head arrives before that on its own.
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.04)
        assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head
        rest = b""
        while not rest.endswith(b"0\r\n\r\n"):
            rest += await asyncio.wait_for(reader.read(65536), 5)
        writer.close()
    assert rest == b"3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n"


async def test_100_continue_is_sent_before_the_body_is_read() -> None:
    sent: list[bytes] = []
    async with serving(sent) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"data")
        response = b""
        while not response.endswith(b"got data"):
            response += await asyncio.wait_for(reader.read(65536), 5)
        writer.close()
    assert response.startswith(b"HTTP/1.1 200")
