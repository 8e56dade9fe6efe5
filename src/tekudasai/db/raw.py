"""Statements every request runs, sent straight to the driver.

SQLAlchemy's execution path (execution context, result object, ORM loading) costs about three
times the driver's own work for a small read: measured 208 µs of CPU for the session lookup
through the ORM against 54 µs on asyncpg directly. The few statements on every request's path
are therefore written as SQLAlchemy Core (so the SQL still comes from the models), compiled
once, and run on the request's own connection with asyncpg's prepared-statement cache. They
are timed like every other statement.

The transaction rule is the session's, whichever path a statement takes: on a transactional
session a raw statement that comes first sends BEGIN itself, exactly as SQLAlchemy would for
its first statement, so raw and ORM statements share the request's one transaction and commit
or roll back together (no extra round trip: the BEGIN was coming anyway). On a read-only
request's session (AUTOCOMMIT, db/session.py) nothing begins and each statement stands alone.
Errors come out as SQLAlchemy's (`sqlalchemy.exc.DBAPIError` subclasses wrapping the driver's),
as from any other statement.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import asyncpg
from sqlalchemy import exc
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

# Called with (statement, its values, seconds) after each raw statement: the process's metrics
# set it.
observer: Callable[[str, list[Any], float], None] | None = None

_DIALECT = asyncpg_dialect()
# The key under which a session's info names the DBAPI connection it keeps (db/session.py).
DRIVER_CONNECTION = "tk_driver_connection"


class RawStatement:
    """A Core statement as PostgreSQL's `$n` SQL plus the order its named values go in."""

    def __init__(self, statement: ClauseElement) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=_DIALECT))
        if any(
            bind.type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
            for bind in compiled.binds.values()
        ):
            # Values would need SQLAlchemy's conversion on the way in: use the normal path.
            raise TypeError("RawStatement only takes values the driver sends as they are")
        self.sql = compiled.string
        self._names: list[str] = list(compiled.positiontup or ())
        self._defaults = compiled.params

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[n] if n in values else self._defaults[n] for n in self._names]

    async def fetch(self, db: AsyncSession, **values: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._run(db, "fetch", values)
        return rows

    async def fetchrow(self, db: AsyncSession, **values: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._run(db, "fetchrow", values)
        return row

    async def _run(self, db: AsyncSession, method: str, values: Mapping[str, Any]) -> Any:
        adapted = await dbapi_connection(db)
        arguments = self.arguments(values)
        try:
            if adapted._transaction is None and not adapted.autocommit:
                # Same BEGIN (and isolation options) SQLAlchemy's cursor sends before its
                # first statement; the session's commit or rollback ends it.
                await adapted._start_transaction()
            started = time.perf_counter()
            result = await getattr(adapted._connection, method)(self.sql, *arguments)
        except Exception as error:
            raise _as_sqlalchemy_error(adapted, self.sql, arguments, error) from error
        if observer is not None:
            observer(self.sql, arguments, time.perf_counter() - started)
        return result


def _as_sqlalchemy_error(
    adapted: Any, sql: str, arguments: list[Any], error: Exception
) -> Exception:
    """The driver's error as SQLAlchemy raises it for an ORM statement (one family to handle);
    anything that is not a database error (a dropped socket, say) as it is."""
    try:
        adapted._handle_exception(error)  # raises the DBAPI-level translation
    except adapted.dbapi.Error as translated:
        return exc.DBAPIError.instance(sql, arguments, translated, adapted.dbapi.Error)
    except Exception as other:
        return other
    return error  # pragma: no cover - _handle_exception always raises


async def dbapi_connection(db: AsyncSession) -> Any:
    """The DBAPI connection (SQLAlchemy's asyncpg adapter) under the session, checked out for
    it if need be. A request's session names it in its info (db/session.py): no trip through
    SQLAlchemy's greenlet bridge to find it."""
    kept = db.info.get(DRIVER_CONNECTION)
    if kept is not None:
        return kept
    connection = await db.connection()
    return connection.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]
