"""Connection management: URLs, SSL options, timeouts, and surviving a database restart."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tekudasai.app import create_app
from tekudasai.db import engine as engine_module
from tekudasai.db import migrate
from tekudasai.db.embedded import EmbeddedPostgres
from tekudasai.db.engine import DatabaseUrlError, to_async_url
from tekudasai.db.lifecycle import ensure_database
from tekudasai.db.session import Database
from tests.conftest import make_settings


def test_libpq_url_becomes_asyncpg_url_with_socket_host() -> None:
    url, args = to_async_url("postgresql://tk:pw@/desk?host=/run/postgresql&port=5433")
    assert url.drivername == "postgresql+asyncpg"
    assert url.query["host"] == "/run/postgresql"
    assert url.database == "desk"
    assert args == {}


def test_sslmode_require_is_passed_through() -> None:
    _, args = to_async_url("postgres://tk@db.example:5432/desk?sslmode=require")
    assert args["ssl"] == "require"


def test_sslmode_verify_full_builds_a_verifying_context(tmp_path: Path) -> None:
    ca = _self_signed_ca(tmp_path)
    url, args = to_async_url(
        f"postgresql://tk@db.example/desk?sslmode=verify-full&sslrootcert={ca}"
    )
    context = args["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname is True
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert "sslmode" not in url.query and "sslrootcert" not in url.query


def test_sslmode_verify_ca_does_not_check_host(tmp_path: Path) -> None:
    ca = _self_signed_ca(tmp_path)
    _, args = to_async_url(f"postgresql://tk@db/desk?sslmode=verify-ca&sslrootcert={ca}")
    assert args["ssl"].check_hostname is False
    assert args["ssl"].verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    "raw", ["mysql://root@localhost/db", "not a url", "postgresql://x@h/db?sslmode=sometimes"]
)
def test_unusable_urls_are_refused_clearly(raw: str) -> None:
    with pytest.raises(DatabaseUrlError):
        to_async_url(raw)


async def test_statement_timeout_and_application_name_are_set(database: Database) -> None:
    async with database.engine.connect() as conn:
        assert (await conn.scalar(text("SHOW statement_timeout"))) == "30s"
        assert (
            await conn.scalar(text("SELECT current_setting('application_name')"))
        ) == "tekudasai"


async def test_a_quiet_period_reuses_the_connection_returned_last(database: Database) -> None:
    """After a burst opened several connections, one request at a time keeps getting the
    connection it just returned: no idle ping, its prepared statements still there."""
    pid = text("SELECT pg_backend_pid()")
    started = asyncio.Event()
    burst: list[int] = []

    async def hold() -> None:
        async with database.engine.connect() as conn:
            burst.append(await conn.scalar(pid))
            if len(burst) == 3:
                started.set()
            await started.wait()  # all three checked out at once

    await asyncio.gather(hold(), hold(), hold())
    assert len(set(burst)) == 3
    seen = []
    for _ in range(4):
        async with database.engine.connect() as conn:
            seen.append(await conn.scalar(pid))
    assert len(set(seen)) == 1, seen  # first in, first out would cycle through all three


@pytest.mark.parametrize("detected_by", ["closed socket", "ping after idle"])
async def test_a_restarted_database_does_not_break_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, detected_by: str
) -> None:
    if detected_by == "ping after idle":
        monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    server = EmbeddedPostgres(tmp_path / "pgdata", extra_settings={"fsync": "off"})
    server.ensure_running()
    try:
        url = server.url("restart_check")
        await ensure_database(url)
        settings = make_settings(url, tmp_path / "data")
        database = Database.connect(url, settings, pool_size=2)
        await migrate.upgrade(database.engine)
        app = create_app(settings, database)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:8000"
        ) as client:
            assert (await client.get("/api/health/ready")).status_code == 200
            server.restart()  # every pooled connection is now dead
            if detected_by == "closed socket":
                # restart() blocked the event loop; in a real restart the loop keeps running
                # and sees the server close each socket.
                await asyncio.sleep(0.05)
            for _ in range(3):
                assert (await client.get("/api/health/ready")).status_code == 200
            server.stop()
            down = await client.get("/api/health/ready")
            assert down.status_code == 503
            assert down.json()["status"] == "error"
            server.ensure_running()
            assert (await client.get("/api/health/ready")).status_code == 200
        await database.dispose()
    finally:
        server.stop(mode="immediate")


async def test_readiness_is_503_when_schema_is_behind(
    client: httpx.AsyncClient, database: Database
) -> None:
    assert (await client.get("/api/health/ready")).status_code == 200
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'older'"))
    response = await client.get("/api/health/ready")
    assert response.status_code == 503
    assert "tekudasai db migrate" in response.json()["message"]


def _self_signed_ca(directory: Path) -> Path:
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tk test ca")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path
