"""One async engine (and pool) per process, built from DATABASE_URL or the embedded server."""

from __future__ import annotations

import ssl
import time
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from tekudasai.config import Settings

_SSL_PARAMS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword")
_PLAIN_SSL_MODES = {"disable", "allow", "prefer", "require"}


class DatabaseUrlError(ValueError):
    """DATABASE_URL cannot be used."""


def to_async_url(raw: str) -> tuple[URL, dict[str, Any]]:
    """Turn a libpq-style URL into an asyncpg SQLAlchemy URL plus connect arguments (SSL)."""
    try:
        url = make_url(raw)
    except Exception as exc:
        raise DatabaseUrlError(f"DATABASE_URL is not a valid URL: {exc}") from exc
    if url.get_backend_name() not in {"postgresql", "postgres"}:
        raise DatabaseUrlError("DATABASE_URL must be a postgresql:// URL")
    query = dict(url.query)
    connect_args: dict[str, Any] = {}
    ssl_opts = {k: query.pop(k) for k in _SSL_PARAMS if k in query}
    if ssl_opts:
        connect_args["ssl"] = _ssl_argument(ssl_opts)
    url = url.set(drivername="postgresql+asyncpg", query=query)
    return url, connect_args


def _ssl_argument(opts: dict[str, Any]) -> str | ssl.SSLContext:
    mode = str(opts.get("sslmode", "prefer"))
    if mode in _PLAIN_SSL_MODES and not opts.get("sslrootcert") and not opts.get("sslcert"):
        return mode
    if mode in _PLAIN_SSL_MODES | {"verify-ca", "verify-full"}:
        cafile = opts.get("sslrootcert")
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        if mode in {"verify-ca", "verify-full"}:
            context.check_hostname = mode == "verify-full"
            context.verify_mode = ssl.CERT_REQUIRED
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if opts.get("sslcert"):
            context.load_cert_chain(
                str(opts["sslcert"]),
                str(opts["sslkey"]) if opts.get("sslkey") else None,
                password=opts.get("sslpassword"),
            )
        return context
    raise DatabaseUrlError(f"unsupported sslmode {mode!r}")


def create_engine(
    database_url: str,
    settings: Settings,
    *,
    pool_size: int | None = None,
    application_name: str = "tekudasai",
    connect_timeout: float | None = None,
    pgbouncer: bool | None = None,
) -> AsyncEngine:
    url, connect_args = to_async_url(database_url)
    server_settings = {"application_name": application_name}
    behind_pooler = settings.db_pgbouncer if pgbouncer is None else pgbouncer
    if behind_pooler:
        connect_args.update(pgbouncer_connect_args())
    elif settings.db_statement_timeout_ms:
        # A start-up parameter PgBouncer refuses ("unsupported startup parameter"): behind it
        # the timeout is the role's (docs/scaling.md: ALTER ROLE … SET statement_timeout).
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    connect_args.update(
        timeout=connect_timeout or settings.db_connect_timeout,
        command_timeout=None,
        server_settings=server_settings,
    )
    engine = create_async_engine(
        url,
        connect_args=connect_args,
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=1800,
        # Last in, first out: a quiet period reuses the connection just returned, which skips
        # the idle ping and has its prepared statements. First in, first out walked every
        # connection a burst had opened (500 event streams connecting open all 20), so each
        # paced request paid a `SELECT 1` and a re-Parse: +40 % per request (issue 18).
        pool_use_lifo=True,
    )
    install_ping(engine)
    return engine


def pgbouncer_connect_args() -> dict[str, Any]:
    """Driver settings for PgBouncer in transaction mode (TK_DB_PGBOUNCER=true).

    Behind a transaction-mode pooler consecutive statements outside a transaction may reach
    different server connections, and a server connection outlives the client that prepared
    something on it. So nothing may be prepared under a name: asyncpg's own cache off
    (`statement_cache_size=0`: its statements are then unnamed and parsed again in the same
    message batch as their execution, the mode asyncpg keeps for PgBouncer) and SQLAlchemy's
    cache off too (`prepared_statement_cache_size=0`: its `prepare()` then makes unnamed
    statements as well). Unnamed statements cannot collide and leave nothing behind on the
    server, so no `prepared_statement_name_func`, NullPool or DISCARD ALL is needed (those are
    SQLAlchemy's recipe for named statements). The price is one more Parse per statement;
    PgBouncer ≥ 1.21 with `max_prepared_statements` could keep the caches, 1.18 (Debian 12)
    cannot.
    """
    return {"statement_cache_size": 0, "prepared_statement_cache_size": 0}


# A connection back in the pool for less than this was alive a moment ago: it is checked
# without a round trip. Under load every checkout is such a one.
PING_AFTER_IDLE_SECONDS = 1.0


def install_ping(engine: AsyncEngine) -> None:
    """A connection broken by a server restart is detected at checkout and replaced.

    SQLAlchemy's `pool_pre_ping` on asyncpg wraps its ping in BEGIN … ROLLBACK: three round
    trips per checkout. Here a connection whose socket the server closed (a restart, a
    terminated backend) is known without asking: asyncpg marks it closed as soon as the event
    loop sees the end of the stream. Only a connection idle for a while, which could sit on a
    silently dropped socket, gets a simple-protocol `SELECT 1`: one round trip, no prepared
    statement (safe behind a transaction-mode pooler). A connection opened for this very
    checkout is not pinged.
    """
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "connect")
    def fresh(_dbapi_connection: Any, record: Any) -> None:
        record.info["tk_idle_since"] = None

    @event.listens_for(pool, "checkin")
    def returned(dbapi_connection: Any, record: Any) -> None:
        record.info["tk_idle_since"] = time.monotonic()
        if dbapi_connection is not None:
            # Out of autocommit, whoever put it there (a read-only request sets the driver
            # adapter's flag directly, db/session.py): the next user gets a transaction.
            dbapi_connection.autocommit = False

    @event.listens_for(pool, "checkout")
    def ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        if driver.is_closed():
            raise exc.DisconnectionError("the server closed the connection")
        idle_since = record.info.get("tk_idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            # run_async: SQLAlchemy's public way to await a driver call inside a pool event.
            dbapi_connection.run_async(lambda conn: conn.execute("SELECT 1"))
        except Exception as error:
            # The pool discards this connection and checks out (or opens) another one.
            raise exc.DisconnectionError(str(error)) from error


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
