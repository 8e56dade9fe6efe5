"""The per-process database handle and the one-transaction-per-request session dependency.

The rule for every request's statements, ORM or raw (db/raw.py): they run in the request's one
transaction, which commits before the response is sent; services only flush. Routes marked
`read_only` skip BEGIN/COMMIT and each statement stands alone (READ COMMITTED takes a snapshot
per statement anyway). BEGIN goes out with the first statement, whichever path it takes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tekudasai.config import Settings
from tekudasai.db.engine import create_engine, make_sessionmaker
from tekudasai.db.raw import DRIVER_CONNECTION


@dataclass
class Database:
    url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]

    @classmethod
    def connect(cls, url: str, settings: Settings, *, pool_size: int | None = None) -> Database:
        engine = create_engine(url, settings, pool_size=pool_size)
        return cls(url=url, engine=engine, sessionmaker=make_sessionmaker(engine))

    async def dispose(self) -> None:
        await self.engine.dispose()


Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


def read_only(endpoint: Endpoint) -> Endpoint:
    """Marks a route whose statements need no common transaction: it skips BEGIN and COMMIT.

    Only for routes that read, or write at most one self-contained statement (the sliding
    session renewal): each statement then commits on its own. Under READ COMMITTED every
    statement takes its own snapshot anyway, so reads see exactly what they would in a
    transaction.
    """
    endpoint.__tk_read_only__ = True  # type: ignore[attr-defined]
    return endpoint


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: services only flush; it commits when the handler returns."""
    database: Database = request.app.state.database
    if getattr(request.scope.get("endpoint"), "__tk_read_only__", False):
        # Two round trips fewer per request (BEGIN, COMMIT) on the hottest reads.
        async with database.sessionmaker() as session:
            await _keep_driver_connection(session, _AUTOCOMMIT)
            yield session
        return
    async with database.sessionmaker() as session, session.begin():
        # No statement is sent yet: BEGIN goes out with the first one, ORM or raw.
        await _keep_driver_connection(session, {})
        yield session


async def _keep_driver_connection(session: AsyncSession, options: dict[str, Any]) -> None:
    """Check the request's connection out now and name it for the statements sent straight to
    the driver (db/raw.py). The session holds it until the request ends (nothing commits
    earlier), so they need no trip through SQLAlchemy's greenlet bridge to find it."""
    connection = await session.connection(execution_options=options)
    pooled = connection.sync_connection.connection  # type: ignore[union-attr]
    session.info[DRIVER_CONNECTION] = pooled.dbapi_connection


# scope="function": the commit happens before the response is sent, so a failed commit
# answers an error instead of a success that was never stored.
DbSession = Annotated[AsyncSession, Depends(get_db, scope="function")]
