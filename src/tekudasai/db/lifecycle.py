"""Where the database is: DATABASE_URL, or the embedded server under TK_DATA_DIR."""

from __future__ import annotations

import asyncpg
from sqlalchemy.engine import make_url

from tekudasai.config import Settings
from tekudasai.db.embedded import EmbeddedPostgres

EMBEDDED_DATABASE = "tekudasai"


def embedded_server(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(settings.pgdata_dir)


async def ensure_database(url: str) -> None:
    """Create the URL's database when missing (embedded server: first start)."""
    parsed = make_url(url)
    name = parsed.database or "postgres"
    admin_url = parsed.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def resolve_database_url(settings: Settings, *, start_embedded: bool = True) -> str:
    """The URL to use; starts (or attaches to) the embedded server when DATABASE_URL is unset."""
    if settings.database_url:
        return settings.database_url
    server = embedded_server(settings)
    if start_embedded:
        server.ensure_running()
    url = server.url(EMBEDDED_DATABASE)
    await ensure_database(url)
    return url
