"""Test infrastructure: one embedded PostgreSQL per run, one migrated template database, and a
fresh database copied from the template for every test (real PostgreSQL, full isolation)."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tekudasai.app import create_app
from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.db import migrate
from tekudasai.db.embedded import EmbeddedPostgres
from tekudasai.db.session import Database

TEMPLATE = "tk_template"
TEST_SECRET = "test-secret-that-is-long-enough-for-production-0123456789"
BASE_URL = "http://127.0.0.1:8000"
_counter = itertools.count()

# The suite must never touch a developer's real configuration.
for _name in ("DATABASE_URL", "BETTER_AUTH_SECRET", "TK_SECRET", "TK_DATA_DIR", "TK_ENV"):
    os.environ.pop(_name, None)


def _forget_fastapi_call_caches() -> None:
    """FastAPI keeps an lru_cache (4,096 entries) of every dependency callable it classified;
    the per-app ones (closures over the app) keep each test's whole app alive, which grew one
    run of the suite to 11 GB and long GC pauses (seconds, in the live servers' threads too).
    A service runs one app; tests build hundreds."""
    from fastapi.dependencies import models

    for name in dir(models):
        cached = getattr(models, name)
        if name.endswith("_cached") and hasattr(cached, "cache_clear"):
            cached.cache_clear()


@pytest.fixture(autouse=True)
def _release_apps() -> Iterator[None]:
    yield
    _forget_fastapi_call_caches()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    root = Path(tempfile.mkdtemp(prefix="tk-test-pg-"))
    server = EmbeddedPostgres(
        root / "pgdata",
        # Durability is irrelevant for throw-away test data; speed is not.
        extra_settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
    )
    server.ensure_running()
    yield server
    server.stop(mode="immediate")
    shutil.rmtree(root, ignore_errors=True)  # some 60 MB per run otherwise, left in /tmp


def server_url(server: EmbeddedPostgres, database: str) -> str:
    return server.url(database)


def make_settings(database_url: str | None, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "DATABASE_URL": database_url,
        "TK_DATA_DIR": str(data_dir),
        "BETTER_AUTH_SECRET": TEST_SECRET,
        "TK_ENV": "test",
        "TK_RATE_LIMITS": "off",
        "TK_BACKGROUND_JOBS": "false",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def _admin(server: EmbeddedPostgres) -> asyncpg.Connection:
    return await asyncpg.connect(server.url("postgres"))


@pytest.fixture(scope="session")
async def template_db(pg_server: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory) -> str:
    conn = await _admin(pg_server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
        await conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    finally:
        await conn.close()
    url = pg_server.url(TEMPLATE)
    settings = make_settings(url, tmp_path_factory.mktemp("template"))
    database = Database.connect(url, settings, pool_size=1)
    await migrate.upgrade(database.engine)
    await database.dispose()  # no connection may stay open to a template while it is copied
    return TEMPLATE


async def create_database_from_template(server: EmbeddedPostgres, template: str) -> str:
    name = f"t_{os.getpid()}_{next(_counter)}"
    conn = await _admin(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    finally:
        await conn.close()
    return name


async def drop_database(server: EmbeddedPostgres, name: str) -> None:
    conn = await _admin(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def db_url(pg_server: EmbeddedPostgres, template_db: str) -> AsyncIterator[str]:
    name = await create_database_from_template(pg_server, template_db)
    yield pg_server.url(name)
    await drop_database(pg_server, name)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path / "data")


@pytest.fixture
async def database(db_url: str, settings: Settings) -> AsyncIterator[Database]:
    database = Database.connect(db_url, settings, pool_size=5)
    yield database
    await database.dispose()


@pytest.fixture
def cipher(settings: Settings) -> PiiCipher:
    return PiiCipher(settings.master_secret())


@pytest.fixture
async def app(settings: Settings, database: Database):  # type: ignore[no-untyped-def]
    application = create_app(settings, database)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE_URL, headers={"Origin": BASE_URL}
    ) as http:
        yield http
