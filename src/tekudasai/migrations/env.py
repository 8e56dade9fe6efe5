"""Alembic environment. `tekudasai db …` hands us an open connection; the plain `alembic`
command gets a URL in `sqlalchemy.url` instead."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from tekudasai.config import get_settings
from tekudasai.db.engine import create_engine
from tekudasai.migrations.models import Base

config = context.config
target_metadata = Base.metadata
EXTENSION_TABLES = {"pg_stat_statements", "pg_stat_statements_info"}


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    return not (type_ == "table" and name in EXTENSION_TABLES)


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_with_url(url: str) -> None:
    engine = create_engine(url, get_settings(), pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(run_with)
    finally:
        await engine.dispose()


given = config.attributes.get("connection")
if given is not None:
    run_with(given)
else:
    asyncio.run(run_with_url(config.get_main_option("sqlalchemy.url") or ""))
