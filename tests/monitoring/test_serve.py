"""`tekudasai serve` on the embedded database: ready, self-healing workers, clean shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import TEST_SECRET

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(base: str, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{base}/api/health/ready", timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"service not ready in {timeout}s ({last})")


def workers_of(parent: psutil.Process) -> set[int]:
    # uvicorn's workers are multiprocessing "spawn" children; skip the resource tracker.
    pids = set()
    for child in parent.children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(child.cmdline()):
                pids.add(child.pid)
        except psutil.Error:
            continue  # exited while we looked
    return pids


def wait_listening(pid: int, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(
            c.laddr.port == port and c.status == psutil.CONN_LISTEN
            for c in psutil.Process(pid).net_connections(kind="tcp")
        ):
            return
        time.sleep(0.2)
    raise AssertionError(f"worker {pid} is not listening on {port}")


def connections_per_worker(port: int, workers: set[int], clients: int = 32) -> dict[int, int]:
    """Open keep-alive connections (one request each) and count which worker holds each."""
    sockets = []
    try:
        for _ in range(clients):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            sockets.append(sock)
        return {
            pid: sum(
                1
                for c in psutil.Process(pid).net_connections(kind="tcp")
                if c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
            )
            for pid in workers
        }
    finally:
        for sock in sockets:
            sock.close()


def test_serve_embedded_heals_workers_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TK_", "DATABASE_URL"))}
    env.update(TK_DATA_DIR=str(tmp_path / "data"), BETTER_AUTH_SECRET=TEST_SECRET)
    process = subprocess.Popen(
        # no --workers: the default is one worker per CPU core
        [sys.executable, "-m", "tekudasai", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    from tekudasai.core.runtime import available_cpus

    expected = available_cpus()  # the default: CPUs this process may use
    try:
        ready = wait_ready(base)
        assert ready.json()["data"]["database"] == "ok"
        assert (tmp_path / "data" / "pgdata" / "PG_VERSION").exists()
        parent = psutil.Process(process.pid)
        deadline = time.monotonic() + 20
        while len(workers := workers_of(parent)) < expected and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) == expected, workers
        for pid in workers:
            wait_listening(pid, port)
        if expected > 1:
            # Each worker listens on its own SO_REUSEPORT socket: connections are spread.
            spread = connections_per_worker(port, workers)
            assert sum(spread.values()) == 32 and min(spread.values()) >= 4, spread

        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        # the surviving worker keeps answering while the supervisor replaces the dead one
        if expected > 1:
            assert httpx.get(f"{base}/api/health", timeout=5).status_code == 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            current = workers_of(parent)
            if len(current) == expected and victim not in current:
                break
            time.sleep(0.3)
        else:
            raise AssertionError("dead worker was not replaced")
        wait_ready(base, timeout=20)
        if expected > 1:
            (replacement,) = current - workers
            wait_listening(replacement, port)
            assert connections_per_worker(port, current)[replacement] >= 4  # it shares too

        process.send_signal(signal.SIGTERM)
        rc = process.wait(timeout=60)
        assert rc == 0, process.stderr.read().decode()[-5000:]  # type: ignore[union-attr]
        assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists(), (
            "postgres left running"
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_workers_exit_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    from tekudasai.db.embedded import EmbeddedPostgres

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TK_", "DATABASE_URL"))}
    env.update(TK_DATA_DIR=str(tmp_path / "data"), BETTER_AUTH_SECRET=TEST_SECRET)
    process = subprocess.Popen(
        [sys.executable, "-m", "tekudasai", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        parent = psutil.Process(process.pid)
        deadline = time.monotonic() + 20
        while len(workers := workers_of(parent)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) == 2, workers
        for pid in workers:
            wait_listening(pid, port)
        process.kill()  # no chance to stop its workers
        process.wait()
        _, alive = psutil.wait_procs([psutil.Process(pid) for pid in workers], timeout=30)
        assert not alive, f"workers outlived their supervisor: {alive}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        # The embedded server is a daemon of its own: a killed launcher leaves it for the next.
        EmbeddedPostgres(tmp_path / "data" / "pgdata").stop()
