"""Fixtures for the accounts tests: apps with non-default settings and the mail outbox."""

from __future__ import annotations

import asyncio
import email
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest

from tekudasai.app import create_app
from tekudasai.config import Settings
from tekudasai.db.session import Database
from tekudasai.tasks import make_worker
from tests.conftest import BASE_URL, make_settings


@asynccontextmanager
async def client_for(
    database: Database, settings: Settings, *, origin: str | None = BASE_URL
) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings, database)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        headers = {"Origin": origin} if origin else {}
        async with httpx.AsyncClient(
            transport=transport, base_url=settings.base_url, headers=headers
        ) as http:
            yield http


@pytest.fixture
def settings_with(db_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for this test's database with some variables overridden."""

    def build(**overrides: Any) -> Settings:
        return make_settings(db_url, tmp_path / "data", **overrides)

    return build


def outbox(settings: Settings) -> list[Message]:
    """The mails written so far, after running every queued job (mail goes through the queue)."""
    deliver_queued(settings)
    if not settings.outbox_dir.exists():
        return []
    return [
        email.message_from_bytes(path.read_bytes())
        for path in sorted(settings.outbox_dir.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    ]


def deliver_queued(settings: Settings) -> int:
    """Run the due jobs of this test's database now, as a worker would (own loop and pool:
    callers are synchronous)."""

    async def drain() -> int:
        assert settings.database_url is not None
        database = Database.connect(settings.database_url, settings, pool_size=1)
        try:
            return await make_worker(database, settings).run_pending()
        finally:
            await database.dispose()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, drain()).result()


def link_token(message: Message) -> str:
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    for word in body.split():
        if "token=" in word:
            return word.split("token=", 1)[1].split("&", 1)[0]
    raise AssertionError(f"no token in mail: {body!r}")
