"""Two `tekudasai serve` nodes, each with its own TK_DATA_DIR, on one PostgreSQL and one bucket
(moto's S3 server) behave as one service (issue 17). Mail sent once and each periodic job once
per period across nodes: tests/jobs/test_two_nodes.py; here: sessions, sign-out, rate limits,
uploads, per-node metrics, and a node killed in the middle of a job."""

from __future__ import annotations

import contextlib
import email
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tekudasai.db.embedded import EmbeddedPostgres
from tests.jobs.test_two_nodes import fetch, shared_postgres, wait_for_rows
from tests.monitoring.test_serve_edge import Served, start_serve, stop_serve
from tests.objectstore import MotoServer, moto_server, objects, s3_bucket

__all__ = ["moto_server", "s3_bucket", "shared_postgres"]  # fixtures

pytestmark = pytest.mark.slow

PASSWORD = "a-long-password"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 40


@pytest.fixture
def silent_smtp() -> Iterator[int]:
    """An SMTP server that accepts connections and never greets: a mail job sending through it
    stays in flight (until aiosmtplib's timeout)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield int(listener.getsockname()[1])
    listener.close()
    for sock in held:
        sock.close()


def start_node(root: Path, name: str, database_url: str, uploads_url: str, **env: str) -> Served:
    root.mkdir()
    return start_serve(
        root,
        DATABASE_URL=database_url,
        TK_NODE_NAME=name,
        TK_UPLOADS_URL=uploads_url,
        TK_BACKGROUND_JOBS="true",
        TK_BACKUP_INTERVAL="off",
        TK_RATE_LIMITS="auth_account=3/minute",
        **env,
    )


def kill_hard(served: Served) -> None:
    """SIGKILL the node's supervisor and its workers at once, like a machine that dies."""
    parent = psutil.Process(served.process.pid)
    for process in [*parent.children(recursive=True), parent]:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    served.process.wait(timeout=10)


def sign_up(node: Served, mail: str) -> str:
    response = httpx.post(
        f"{node.base}/api/auth/signup",
        json={"name": "Node Tester", "email": mail, "password": PASSWORD},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def outbox_recipients(node_root: Path) -> list[str]:
    outbox = node_root / "data" / "outbox"
    return [str(email.message_from_bytes(p.read_bytes())["To"]) for p in outbox.glob("*.eml")]


def test_two_nodes_on_one_database_and_one_bucket(
    tmp_path: Path,
    shared_postgres: EmbeddedPostgres,
    moto_server: MotoServer,
    s3_bucket: str,
    silent_smtp: int,
) -> None:
    url = shared_postgres.url("postgres")
    uploads_url = f"s3://{s3_bucket}/desk?endpoint={moto_server.endpoint}"
    # B sends mail through the silent server, so its mail jobs stay in flight; A writes them
    # into its outbox.
    node_b = start_node(
        tmp_path / "b", "node-b", url, uploads_url, TK_SMTP_URL=f"smtp://127.0.0.1:{silent_smtp}"
    )
    node_a = start_node(tmp_path / "a", "node-a", url, uploads_url)
    try:
        # A session made on A works on B; signing out on B ends it on A.
        token = sign_up(node_a, "roamer@example.test")
        on_b = httpx.get(f"{node_b.base}/api/auth/session", headers=auth(token), timeout=10)
        assert on_b.status_code == 200 and on_b.json()["user"]["email"] == "roamer@example.test"
        out = httpx.post(f"{node_b.base}/api/auth/signout", headers=auth(token), timeout=10)
        assert out.status_code == 200, out.text
        after = httpx.get(f"{node_a.base}/api/tickets/my", headers=auth(token), timeout=10)
        assert after.status_code == 401

        # Rate limits count across both nodes: 3 failed sign-ins a minute per account.
        sign_up(node_b, "target@example.test")
        codes = [
            httpx.post(
                f"{node.base}/api/auth/signin",
                json={"email": "target@example.test", "password": "wrong-password-x"},
                timeout=10,
            ).status_code
            for node in (node_a, node_b, node_a, node_b)
        ]
        assert codes == [401, 401, 401, 429], codes

        # An upload through A downloads through B: the bytes are in the bucket, on no node.
        uploader = sign_up(node_a, "uploader@example.test")
        sent = httpx.post(
            f"{node_a.base}/api/uploads",
            files={"file": ("shot.png", PNG, "image/png")},
            headers=auth(uploader),
            timeout=30,
        )
        assert sent.status_code == 200, sent.text
        got = httpx.get(f"{node_b.base}{sent.json()['data']['url']}", headers=auth(uploader))
        assert got.status_code == 200 and got.content == PNG
        assert got.headers["content-disposition"].startswith("attachment;")
        assert list(objects(moto_server, s3_bucket).values()) == [len(PNG)]
        for root in (tmp_path / "a", tmp_path / "b"):
            assert not (root / "data" / "uploads").exists()

        # Metrics per node: each node says which it is (scraped one by one, as Prometheus does).
        for node, name in ((node_a, "node-a"), (node_b, "node-b")):
            text = httpx.get(f"{node.base}/metrics", timeout=10).text
            assert f'tk_node_info{{node="{name}",version="' in text
            assert "tk_http_requests_total" in text

        # Until B holds a mail job in flight, ask for more verification mails.
        for attempt in range(10):
            running = fetch(
                url,
                "SELECT id FROM jobs WHERE name = 'mail.send' AND status = 'running'"
                " AND locked_by LIKE 'node-b:%'",
            )
            if running:
                break
            sign_up((node_a, node_b)[attempt % 2], f"more{attempt}@example.test")
            time.sleep(0.5)
        assert running, "node B never claimed a mail job"
        in_flight = sorted(row["id"] for row in running)

        # B dies mid-job: A keeps answering, and B's job runs again on A.
        kill_hard(node_b)
        assert httpx.get(f"{node_a.base}/api/health/ready", timeout=10).status_code == 200
        assert httpx.get(f"{node_a.base}/api/tickets/my", headers=auth(uploader)).status_code == 200
        assert httpx.get(f"{node_a.base}{sent.json()['data']['url']}", headers=auth(uploader))
        # B's lease would run out within a minute: let it run out now (the worker that renewed
        # it is gone, so waiting would change nothing but the test's length).
        fetch(
            url,
            "UPDATE jobs SET locked_until = now() WHERE status = 'running'"
            " AND locked_by LIKE 'node-b:%' RETURNING id",
        )
        done = wait_for_rows(
            url,
            f"SELECT id, status, attempts FROM jobs WHERE id = ANY(ARRAY{in_flight}::bigint[])",
            lambda rows: all(r["status"] == "done" for r in rows),
            timeout=60,
        )
        # Done, with only A alive: B's claim counted as an attempt, A's run as the next.
        assert all(r["attempts"] >= 2 for r in done), done
        # Each mail went out once: B's silent server never took one.
        sent_by_a = outbox_recipients(tmp_path / "a")
        assert len(sent_by_a) == len(set(sent_by_a)), sent_by_a

        # Periodic jobs: one run per period across both nodes.
        periodic = fetch(
            url,
            "SELECT name, period_key, count(*) AS runs FROM jobs"
            " WHERE period_key IS NOT NULL GROUP BY name, period_key",
        )
        assert periodic and all(row["runs"] == 1 for row in periodic), periodic
    finally:
        stop_serve(node_a)
        stop_serve(node_b)
