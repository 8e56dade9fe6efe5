"""A real S3 API for the tests: moto's server in its own process on a loopback port (its memory
is not the test process's, so memory checks measure the app alone), and a TCP relay in front
of it that a test can cut to make the store unreachable while keeping its contents."""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MotoServer:
    process: subprocess.Popen[bytes]
    endpoint: str

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_moto(log: Path) -> MotoServer:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        env={**os.environ, **CREDENTIALS},
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"moto_server exited: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{endpoint}/moto-api/", timeout=1)
            return MotoServer(process, endpoint)
        time.sleep(0.1)
    process.kill()
    raise AssertionError("moto_server did not start within 30 s")


def objects(server: MotoServer, bucket: str) -> dict[str, int]:
    """Every object in `bucket`: key → size."""
    found: dict[str, int] = {}
    for page in server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            found[item["Key"]] = int(item["Size"])
    return found


def unfinished_uploads(server: MotoServer, bucket: str) -> list[str]:
    listing = server.client().list_multipart_uploads(Bucket=bucket)
    return [upload["Key"] for upload in listing.get("Uploads", [])]


@dataclass
class Relay:
    """Forwards 127.0.0.1:port to the target; `cut()` drops every connection and refuses new
    ones (the store becomes unreachable), `mend()` lets traffic through again."""

    target_port: int
    port: int = 0
    _down: threading.Event = field(default_factory=threading.Event)
    _sockets: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listener: socket.socket | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Relay:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._down.is_set():
                # Reset at once: the client sees the connection refused/closed.
                client.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if self._down.is_set():
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._sockets -= {source, sink}

    def cut(self) -> None:
        self._down.set()
        with self._lock:
            live = list(self._sockets)
        for sock in live:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def mend(self) -> None:
        self._down.clear()

    def close(self) -> None:
        self.cut()
        if self._listener is not None:
            self._listener.close()


@contextlib.contextmanager
def relay_to(server: MotoServer) -> Iterator[Relay]:
    relay = Relay(int(server.endpoint.rsplit(":", 1)[1])).start()
    try:
        yield relay
    finally:
        relay.close()


# -- fixtures (imported by the conftest files that need them) -------------------------------

_buckets = iter(range(1, 1_000_000))


_shared: list[MotoServer] = []


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> MotoServer:
    """One server for the whole run: each test module that imports this fixture gets its own
    session-scoped copy of it, so the process itself is kept here and stopped at exit."""
    if not _shared:
        _shared.append(start_moto(tmp_path_factory.mktemp("moto") / "moto.log"))
        atexit.register(_shared[0].stop)
    return _shared[0]


@pytest.fixture
def s3_bucket(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket; the AWS variables boto3 reads point at the test credentials."""
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    name = f"tk-uploads-{os.getpid()}-{next(_buckets)}"
    moto_server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_relay(moto_server: MotoServer) -> Iterator[Relay]:
    with relay_to(moto_server) as relay:
        yield relay
