"""The per-process database handle and the one-transaction-per-request session dependency.

The rule for every request's statements, ORM or raw (db/raw.py): they run in the request's one
transaction, which commits before the response is sent; services only flush. Routes marked
`read_only` skip BEGIN/COMMIT and each statement stands alone (READ COMMITTED takes a snapshot
per statement anyway). BEGIN goes out with the first statement, whichever path it takes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.util import greenlet_spawn

from tekudasai.config import Settings
from tekudasai.core.direct_routes import unshielded
from tekudasai.core.handlers import database_unavailable
from tekudasai.db import wakeups
from tekudasai.db.engine import DatabaseUrlError, create_engine, make_sessionmaker
from tekudasai.db.raw import DRIVER_CONNECTION
from tekudasai.db.replica import Replica

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Database:
    url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # DATABASE_REPLICA_URL: lag-tolerant reads (ReadDb below, db/replica.py).
    replica: Replica | None = None
    settings: Settings | None = None
    _listen_engine: AsyncEngine | None = None

    @classmethod
    def connect(cls, url: str, settings: Settings, *, pool_size: int | None = None) -> Database:
        engine = create_engine(url, settings, pool_size=pool_size)
        replica = (
            Replica(settings.database_replica_url, settings, engine)
            if settings.database_replica_url
            else None
        )
        return cls(
            url=url,
            engine=engine,
            sessionmaker=make_sessionmaker(engine),
            replica=replica,
            settings=settings,
        )

    @property
    def session_url(self) -> str:
        """Where tools that keep session state connect (pg_dump, pg_restore, checks): PostgreSQL
        itself. Behind PgBouncer in transaction mode that is TK_DB_DIRECT_URL: pg_dump's
        session settings (`search_path` emptied) would otherwise stay on a pooled server
        connection, and every client that gets it next fails ("relation … does not exist")."""
        settings = self.settings
        if settings is None or not settings.db_pgbouncer:
            return self.url
        if settings.db_direct_url:
            return settings.db_direct_url
        raise DatabaseUrlError(
            "behind PgBouncer (TK_DB_PGBOUNCER=true) backups, restores and checks need "
            "TK_DB_DIRECT_URL, a URL straight to PostgreSQL"
        )

    def listen_engine(self) -> AsyncEngine | None:
        """An engine whose connections may LISTEN, or None: then only polling works.

        LISTEN belongs to a server session; behind PgBouncer in transaction mode the server
        connection changes under the client and notifications go nowhere (or to a stranger).
        TK_DB_DIRECT_URL names a way around the pooler for this one connection per process.
        """
        settings = self.settings
        if settings is None or not (settings.db_direct_url or settings.db_pgbouncer):
            return self.engine
        if settings.db_direct_url:
            if self._listen_engine is None:
                self._listen_engine = create_engine(
                    settings.db_direct_url,
                    settings,
                    pool_size=1,
                    application_name="tekudasai-listen",
                    pgbouncer=False,
                )
            return self._listen_engine
        return None

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncSession]:
        """A session outside any transaction: each statement commits on its own, with no BEGIN
        or COMMIT round trips, and raw statements (db/raw.py) find its connection at once. For
        work that is one statement at a time (the job queue's claims).

        Opened and closed like a read-only request's session (one greenlet round each way):
        measured 429 → 306 µs of CPU per claim that finds nothing (in process, alternating,
        8 rounds of 1,000); a job costs two or three claims' worth of this."""
        async with _read_only_session(self) as session:
            yield session

    async def dispose(self) -> None:
        await wakeups.drain(self.engine)  # what committed before still wakes its listeners
        await self.engine.dispose()
        if self.replica is not None:
            await self.replica.dispose()
        if self._listen_engine is not None:
            await self._listen_engine.dispose()


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
    # Its session's close sends nothing in autocommit, and shields itself when a transaction
    # is open (`_read_only_session`): FastAPI's shield around it is not needed.
    return unshielded(endpoint)


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: services only flush; it commits when the handler returns."""
    database: Database = request.app.state.database
    if getattr(request.scope.get("endpoint"), "__tk_read_only__", False):
        async with _read_only_session(database) as session:
            yield session
        return
    async with database.sessionmaker() as session, session.begin():
        # No statement is sent yet: BEGIN goes out with the first one, ORM or raw.
        await _keep_driver_connection(session, {})
        yield session
    if database.replica is not None and request.method not in SAFE_METHODS:
        # Committed: this client's next lag-tolerant reads must see it (db/replica.py).
        await database.replica.note_write(request.scope, request.headers)


@asynccontextmanager
async def _read_only_session(database: Database) -> AsyncIterator[AsyncSession]:
    """A session for a `read_only` route: two round trips fewer (BEGIN, COMMIT), and a lighter
    set-up than a session's own connection handling.

    The connection is checked out first and the session is bound to it, so ORM and raw
    statements share it; the driver adapter is put in autocommit directly (what SQLAlchemy's
    AUTOCOMMIT isolation level does underneath), and the pool's check-in hook takes it out
    again (db/engine.py), so no connection goes back to the pool in autocommit. The session's
    own way there (an execution option, a transaction object, a greenlet round per step) cost
    13 to 16 % more CPU per request on my ticket, my list and the due-sorted queue (in process,
    both ways alternating in one run).

    The connection is opened and closed with one greenlet round each, the session's close in
    the same round as the connection's: `async with engine.connect()` took three rounds and a
    task of its own for the close (it shields the close from cancellation). Measured 303 → 216
    µs of CPU for a session with one statement (in process, alternating, 8 rounds). The close
    needs no shield here: with no transaction open (autocommit) it sends nothing and never
    suspends, so no cancellation can cut it short; otherwise it is shielded as before.
    """
    engine = database.engine
    sync_connection = await greenlet_spawn(engine.sync_engine.connect)
    try:
        connection = AsyncConnection(engine, sync_connection)
        adapted: Any = sync_connection.connection.dbapi_connection
        adapted.autocommit = True
        session = database.sessionmaker(bind=connection)
        session.info[DRIVER_CONNECTION] = adapted
    except BaseException:
        await greenlet_spawn(sync_connection.close)
        raise
    try:
        yield session
    finally:
        closing = greenlet_spawn(_close_both, session.sync_session, sync_connection)
        if adapted._transaction is None:
            await closing
        else:
            await asyncio.shield(closing)


def _close_both(session: Session, connection: Connection) -> None:
    try:
        session.close()
    finally:
        connection.close()


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


async def get_read_db(request: Request, primary: DbSession) -> AsyncSession:
    """A session for a read that tolerates a little lag: on the replica when it is configured,
    current enough and has replayed this client's last write; else the request's own primary
    session (the same one, no second connection). Only for routes that read nothing they are
    about to write: the replica refuses writes."""
    database: Database = request.app.state.database
    if database.replica is None:
        # A plain return, not a generator: FastAPI drives a generator dependency through an
        # exit stack on every request, a measurable cost on the hottest reads.
        return primary
    # The exit stack FastAPI gives function-scoped generator dependencies: the replica's
    # session closes exactly where a generator dependency's would.
    exits: AsyncExitStack = request.scope["fastapi_function_astack"]
    return await exits.enter_async_context(_replica_or_primary(database.replica, request, primary))


@asynccontextmanager
async def _replica_or_primary(
    replica: Replica, request: Request, primary: AsyncSession
) -> AsyncIterator[AsyncSession]:
    if not replica.usable(replica.fence_of(request.headers)):
        replica.routed("primary")
        yield primary
        return
    session = replica.sessionmaker()
    try:
        await _keep_driver_connection(session, _AUTOCOMMIT)
        checked_out = True
    except Exception as error:
        # Gone since the last sample (stopped, restarted, unreachable): the primary answers
        # this read and the next ones until a sample finds the replica back.
        await session.close()
        replica.mark_down(error)
        checked_out = False
    if not checked_out:
        replica.routed("primary")
        yield primary
        return
    replica.routed("replica")
    try:
        yield session
    except Exception as error:
        if database_unavailable(error):
            replica.mark_down(error)
        raise
    finally:
        await session.close()


# For routes that may read from the replica (see get_read_db); declare it after the principal
# (CurrentUser and friends), which always comes from the primary.
ReadDb = Annotated[AsyncSession, Depends(get_read_db)]
