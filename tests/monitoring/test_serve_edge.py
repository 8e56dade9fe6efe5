"""The request edge on a real `tekudasai serve` (issue 12): keep-alive connections survive bad
input, slow clients are cut, proxies and origins are configured, and a database outage under
load answers 503 with Retry-After instead of dropping connections."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tekudasai.db.embedded import EmbeddedPostgres
from tests.conftest import TEST_SECRET
from tests.monitoring.test_serve import free_port, wait_ready

pytestmark = pytest.mark.slow

HEADER_TIMEOUT_S = 1.5


class Served:
    def __init__(self, process: subprocess.Popen[bytes], port: int, stderr: Path) -> None:
        self.process = process
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.stderr_path = stderr

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def start_serve(tmp_path: Path, **env_overrides: str) -> Served:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TK_", "DATABASE_URL"))}
    env.update(
        TK_DATA_DIR=str(tmp_path / "data"),
        BETTER_AUTH_SECRET=TEST_SECRET,
        TK_RATE_LIMITS="off",
        TK_BACKGROUND_JOBS="false",
        TK_HEADER_TIMEOUT=str(HEADER_TIMEOUT_S),
    )
    env.update(env_overrides)  # may replace a default above
    stderr = tmp_path / "serve.stderr"
    process = subprocess.Popen(
        [sys.executable, "-m", "tekudasai", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=stderr.open("wb"),
    )
    served = Served(process, port, stderr)
    try:
        wait_ready(served.base)
    except AssertionError:
        stop_serve(served)
        raise AssertionError(served.stderr()[-3000:]) from None
    return served


def stop_serve(served: Served) -> None:
    if served.process.poll() is None:
        served.process.terminate()
        try:
            served.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            served.process.kill()
            served.process.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = start_serve(tmp_path_factory.mktemp("edge"))
    yield served
    stop_serve(served)


def sign_up(base: str, email: str) -> str:
    response = httpx.post(
        f"{base}/api/auth/signup",
        json={"name": "Edge Tester", "email": email, "password": "correct-horse-battery"},
        timeout=10,  # an API client: no Origin, no cookie
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def local_port(response: httpx.Response) -> int:
    stream: Any = response.extensions["network_stream"]
    return int(stream.get_extra_info("client_addr")[1])


def test_bad_text_keeps_the_keep_alive_connection_usable(served: Served) -> None:
    token = sign_up(served.base, "keepalive@example.test")
    before = served.stderr()
    with httpx.Client(base_url=served.base, headers={"Authorization": f"Bearer {token}"}) as http:
        first = http.get("/api/tickets/my", params={"search": "\x00"})
        assert first.status_code == 400, first.text
        assert first.json()["code"] == "VALIDATION_ERROR"
        surrogate = http.post(
            "/api/tickets/my",
            content='{"formId": "x", "summary": "\\ud800", "formResponse": {}}',
            headers={"Content-Type": "application/json"},
        )
        assert surrogate.status_code == 400, surrogate.text
        second = http.get("/api/tickets/my")
        assert second.status_code == 200, second.text
        # One connection served all three: nothing closed it after the 400s.
        assert local_port(first) == local_port(surrogate) == local_port(second)
    time.sleep(0.3)  # let the worker flush its log lines
    logged = served.stderr()[len(before) :]
    assert "Traceback" not in logged and "Exception in ASGI application" not in logged, logged
    metrics = httpx.get(f"{served.base}/metrics", timeout=10).text
    assert 'tk_errors_total{code="UNEXPECTED_ERROR"}' not in metrics


def test_a_client_that_stops_mid_header_is_cut_off(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=HEADER_TIMEOUT_S + 5) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server, no answer
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 3
    # A connection that never sends anything is cut the same way.
    with socket.create_connection(("127.0.0.1", served.port), timeout=HEADER_TIMEOUT_S + 5) as sock:
        assert sock.recv(1024) == b""
    # A normal request on a fresh connection is not affected, and a slow body is not cut.
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


def test_metrics_are_not_public_behind_a_proxy_on_the_same_host(served: Served) -> None:
    assert httpx.get(f"{served.base}/metrics", timeout=10).status_code == 200
    for header in (
        {"X-Forwarded-For": "203.0.113.9"},
        {"Forwarded": "for=203.0.113.9;proto=https"},
        {"X-Real-IP": "203.0.113.9"},
    ):
        response = httpx.get(f"{served.base}/metrics", headers=header, timeout=10)
        assert response.status_code == 404, header
    local = httpx.get(f"{served.base}/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
    assert local.status_code == 200


def test_the_origins_serve_listens_on_are_trusted(served: Served) -> None:
    for origin in (f"http://localhost:{served.port}", f"http://127.0.0.1:{served.port}"):
        response = httpx.post(
            f"{served.base}/api/auth/signin",
            json={"email": "nobody@example.test", "password": "wrong-password-1"},
            headers={"Origin": origin},
            timeout=10,
        )
        assert response.status_code == 401, (origin, response.text)
    foreign = httpx.post(
        f"{served.base}/api/auth/signin",
        json={"email": "nobody@example.test", "password": "wrong-password-1"},
        headers={"Origin": "http://evil.example"},
        timeout=10,
    )
    assert foreign.status_code == 403
    assert foreign.json()["code"] == "CSRF_FAILED"


def test_a_refused_web_form_post_shows_a_page(served: Served) -> None:
    response = httpx.post(
        f"{served.base}/auth/login",
        data={"email": "a@example.test", "password": "x", "csrf_token": "x"},
        headers={"Origin": "http://evil.example", "Accept": "text/html"},
        timeout=10,
    )
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "trust" in response.text and '"code"' not in response.text


# -- Database outage under load --------------------------------------------------------------


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own: it is stopped mid-test, the suite's must not be."""
    # Outside pytest's 0700 temporary tree: the server runs as its own system user.
    root = Path(tempfile.mkdtemp(prefix="tk-outage-pg-"))
    server = EmbeddedPostgres(root / "pgdata", extra_settings={"fsync": "off"})
    server.ensure_running()
    yield server
    server.stop(mode="immediate")
    shutil.rmtree(root, ignore_errors=True)


def test_database_outage_under_load_answers_503_and_drops_nothing(
    tmp_path: Path, own_postgres: EmbeddedPostgres
) -> None:
    served = start_serve(tmp_path, DATABASE_URL=own_postgres.url("postgres"))
    try:
        admin_token = sign_up(served.base, "outage-admin@example.test")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tekudasai",
                "users",
                "set-role",
                "outage-admin@example.test",
                "admin",
            ],
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("TK_")},
                "DATABASE_URL": own_postgres.url("postgres"),
                "TK_DATA_DIR": str(tmp_path / "data"),
                "BETTER_AUTH_SECRET": TEST_SECRET,
            },
            cwd=tmp_path,
            check=True,
            capture_output=True,
        )
        form = httpx.post(
            f"{served.base}/api/forms",
            json={
                "name": "Outage",
                "description": "",
                "elements": [{"id": "e1", "type": "textarea", "name": "d", "label": "D"}],
            },
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=10,
        )
        assert form.status_code == 200, form.text
        form_id = form.json()["data"]["id"]
        token = sign_up(served.base, "outage-user@example.test")

        outcomes: list[tuple[int, str | None]] = []
        dropped: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(
                base_url=served.base, headers={"Authorization": f"Bearer {token}"}, timeout=30
            ) as http:
                while not stop.is_set():
                    try:
                        response = http.post(
                            "/api/tickets/my",
                            json={"formId": form_id, "summary": "load", "formResponse": {"d": "x"}},
                        )
                    except httpx.TransportError as exc:
                        with lock:
                            dropped.append(repr(exc))
                        continue
                    with lock:
                        outcomes.append((response.status_code, response.headers.get("retry-after")))
                        if response.status_code == 503:
                            assert response.json()["code"] == "SERVICE_UNAVAILABLE"

        threads = [threading.Thread(target=client, daemon=True) for _ in range(8)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.5)
            own_postgres.stop(mode="fast")
            time.sleep(3)
            ready = httpx.get(f"{served.base}/api/health/ready", timeout=10)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)

        assert not dropped, dropped[:5]
        statuses = {status for status, _ in outcomes}
        assert 200 in statuses and 503 in statuses, statuses
        assert statuses <= {200, 503}, statuses
        assert all(retry for status, retry in outcomes if status == 503)
        assert ready.status_code == 503
        logged = served.stderr()
        assert "Traceback" not in logged and "Exception in ASGI application" not in logged

        own_postgres.ensure_running()
        wait_ready(served.base, timeout=30)
    finally:
        stop_serve(served)


def test_logs_off_a_terminal_are_json_lines_without_colour_codes(served: Served) -> None:
    lines = [line for line in served.stderr().splitlines() if line.strip()]
    assert any("Started server process" in line for line in lines)
    for line in lines:
        entry = json.loads(line)  # stderr is a file here: TK_LOG_FORMAT=auto picks JSON
        assert "color_message" not in entry, entry
