"""`tekudasai serve --workers 2`: /metrics merges the samples of every worker process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx

from tekudasai.config import Settings
from tests.conftest import TEST_SECRET
from tests.monitoring.conftest import parse_metrics, value


async def _has_extension(url: str, name: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = $1", name))
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_metrics_are_merged_across_workers(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    stale = data_dir / "metrics"
    stale.mkdir(parents=True)
    (stale / "counter_999999.db").write_bytes(b"left over from a previous run")
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "TK_DATA_DIR": str(data_dir),
        "BETTER_AUTH_SECRET": TEST_SECRET,
        "TK_BACKGROUND_JOBS": "false",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "tekudasai", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            assert server.poll() is None, "server exited"
            time.sleep(0.2)
        # New connections each time, so both workers get some of them.
        for _ in range(60):
            assert httpx.get(f"{base}/api/health", timeout=5).status_code == 200
        scraped = parse_metrics(httpx.get(f"{base}/metrics", timeout=5).text)
        assert (
            value(
                scraped, "tk_http_requests_total", method="GET", route="/api/health", status="200"
            )
            == 60
        )
        pool_size = Settings.model_fields["db_pool_size"].default
        assert value(scraped, "tk_db_pool_size") == 2 * pool_size  # both workers' pools, summed
        pids = {p.name.rsplit("_", 1)[-1] for p in stale.glob("counter_*.db")}
        assert len(pids) == 2, pids  # two live workers wrote samples; the stale file is gone
        assert not (stale / "counter_999999.db").exists()
        # `serve` created pg_stat_statements in the database it serves (the library is preloaded).
        assert asyncio.run(_has_extension(db_url, "pg_stat_statements"))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
