"""`tekudasai serve`: start the database (embedded or not), migrate, then supervise workers.

The launcher owns the embedded PostgreSQL: workers get its URL through DATABASE_URL and never
start or stop it. uvicorn's Multiprocess supervisor replaces a worker that dies and drains
in-flight requests on SIGTERM; after it returns we stop PostgreSQL if we started it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import text
from uvicorn.supervisors import Multiprocess

from tekudasai import seed
from tekudasai.config import ConfigError, Settings, listen_origins
from tekudasai.core.crypto import PiiCipher
from tekudasai.core.logging import configure_logging
from tekudasai.core.runtime import HeaderTimeoutProtocol
from tekudasai.db import migrate
from tekudasai.db.lifecycle import embedded_server, resolve_database_url
from tekudasai.db.session import Database
from tekudasai.monitoring import querystats
from tekudasai.uploads.dependencies import storage_for

log = logging.getLogger("tekudasai.serve")

GRACEFUL_SHUTDOWN_S = 20
LISTEN_BACKLOG = 2048
# Connections kept free beside the workers' pools: the launcher, migrations, backups, psql.
CONNECTION_HEADROOM = 10
MIN_POOL_SIZE = 2


class WorkerSocket(socket.socket):
    """The serving address, bound here (the port is taken and checked) but not listening.

    Handed to each worker, it arrives there as that worker's own listening socket on the same
    address with SO_REUSEPORT, and the kernel spreads new connections over the workers. With
    one shared socket the first worker to wake accepted nearly all of a burst: 30 of a
    benchmark's 32 keep-alive connections went to one worker while the other idled.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        host, port = self.getsockname()[:2]
        return (listening_socket, (self.family, host, port))


def reserve_address(host: str, port: int) -> WorkerSocket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = WorkerSocket(family, socket.SOCK_STREAM)
    _share_port(sock)
    sock.bind((host, port))
    return sock


def listening_socket(family: int, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    _share_port(sock)
    sock.bind((host, port))
    sock.listen(LISTEN_BACKLOG)
    return sock


def _share_port(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)


def pool_budget(settings: Settings, *, workers: int, max_connections: int) -> tuple[int, int]:
    """Pool size and overflow per worker so that all workers fit in `max_connections`.

    Explicit TK_DB_POOL_SIZE / TK_DB_MAX_OVERFLOW are the operator's choice: if they do not
    fit, start-up stops with a one-line error saying what would. The defaults are sized down
    (overflow first, then the pool) so that `serve` on a many-core host just works.
    """
    size, overflow = settings.db_pool_size, settings.db_max_overflow
    available = max_connections - CONNECTION_HEADROOM
    if workers * (size + overflow) <= available:
        return size, overflow
    per_worker = available // workers
    fitting = max(1, available // (size + overflow))
    explicit = {"db_pool_size", "db_max_overflow"} & settings.model_fields_set
    if explicit or per_worker < MIN_POOL_SIZE:
        raise ConfigError(
            f"{workers} workers x {size + overflow} connections (TK_DB_POOL_SIZE "
            f"+ TK_DB_MAX_OVERFLOW) + {CONNECTION_HEADROOM} spare exceed the database's "
            f"max_connections {max_connections}: use --workers {fitting} "
            "or a smaller pool, or raise max_connections"
        )
    overflow = min(overflow, max(0, per_worker - size))
    size = min(size, per_worker - overflow)
    log.info(
        "pool sized to %d+%d connections per worker: %d workers within max_connections %d",
        size,
        overflow,
        workers,
        max_connections,
    )
    return size, overflow


async def prepare(settings: Settings, *, demo: bool, workers: int = 1) -> str:
    """Migrate to head (and seed the demo set), size the workers' pools to the server's
    max_connections; returns the URL the workers will use."""
    url = await resolve_database_url(settings)
    database = Database.connect(url, settings, pool_size=1)
    try:
        if settings.db_pgbouncer:
            # The pools hold connections to PgBouncer, not to the server: its
            # max_client_conn bounds them, and its pool sizes the server's share.
            size, overflow = settings.db_pool_size, settings.db_max_overflow
        else:
            async with database.engine.connect() as conn:
                max_connections = int(
                    (await conn.execute(text("SHOW max_connections"))).scalar_one()
                )
            size, overflow = pool_budget(settings, workers=workers, max_connections=max_connections)
        os.environ["TK_DB_POOL_SIZE"] = str(size)
        os.environ["TK_DB_MAX_OVERFLOW"] = str(overflow)
        await migrate.upgrade(database.engine)
        await querystats.ensure_extension(database.engine)
        if demo:
            async with database.sessionmaker() as session, session.begin():
                accounts = await seed.seed_demo(session, PiiCipher(settings.master_secret()))
            for account in accounts:
                log.info(
                    "demo account %s / %s (%s)", account.email, account.password, account.role.value
                )
    finally:
        await database.dispose()
    return url


def prepare_metrics_dir(default: Path) -> None:
    """Workers share Prometheus samples through files; start from an empty directory."""
    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or default)
    if path.is_dir():
        for old in path.glob("*.db"):
            old.unlink(missing_ok=True)
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def prepare_worker_malloc() -> None:
    """One malloc arena per worker (MALLOC_ARENA_MAX=1, unless the operator set it).

    glibc gives each thread that allocates its own arena, and the tail of a thread's arena
    never goes back to the kernel, not even through malloc_trim: the 19 MiB each password
    hash takes stayed resident for good in every hashing thread. In the main arena it is
    returned when hashing pauses (accounts/passwords.py). The other threads (hashing, DNS)
    allocate rarely, so they hardly contend for the one arena.
    """
    os.environ.setdefault("MALLOC_ARENA_MAX", "1")


def uvicorn_config(settings: Settings, *, host: str, port: int, workers: int) -> uvicorn.Config:
    """The workers' server: trusted proxies, and limits for slow, idle and too many clients."""
    config = uvicorn.Config(
        "tekudasai.asgi:app",
        host=host,
        port=port,
        workers=workers,
        http=HeaderTimeoutProtocol,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_ips,
        server_header=False,
        log_config=None,
        access_log=False,
        timeout_keep_alive=settings.keepalive_timeout,
        # Beyond this many connections and in-flight requests a worker answers 503 at once.
        limit_concurrency=settings.worker_concurrency,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    config.tk_header_timeout = settings.header_timeout  # type: ignore[attr-defined]
    return config


def serve(settings: Settings, *, host: str, port: int, workers: int, demo: bool) -> None:
    configure_logging(settings.log_level, settings.log_format)
    settings.master_secret()  # generate the secret once, before workers race for it
    storage_for(settings)  # a bad TK_UPLOADS_URL (or S3 without boto3) stops here, once
    server = embedded_server(settings) if settings.embedded else None
    started_here = server is not None and not server.is_running()
    try:
        url = asyncio.run(prepare(settings, demo=demo, workers=workers))
        os.environ["DATABASE_URL"] = url
        if server is not None:
            os.environ["TK_EMBEDDED_PGDATA"] = str(server.pgdata)
        os.environ.setdefault("TK_DATA_DIR", str(settings.data_dir))
        os.environ["TK_LISTEN_ORIGINS"] = ",".join(listen_origins(host, port))
        prepare_metrics_dir(settings.data_dir / "metrics")
        prepare_worker_malloc()  # read by each worker's C library when it starts
        config = uvicorn_config(settings, host=host, port=port, workers=workers)
        address = reserve_address(host, port)
        log.info("serving on http://%s:%d with %d worker(s)", host, port, workers)
        Multiprocess(config, sockets=[address]).run()
    finally:
        if server is not None and started_here:
            log.info("stopping embedded PostgreSQL")
            server.stop()
