"""What every CLI command shares: one-line errors, and a database session for one command."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.config import ConfigError, Settings, get_settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.core.errors import AppError
from tekudasai.db.embedded import EmbeddedPostgresError
from tekudasai.db.engine import DatabaseUrlError
from tekudasai.db.lifecycle import embedded_server, resolve_database_url
from tekudasai.db.session import Database

P = ParamSpec("P")
R = TypeVar("R")

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    AppError,
    ConfigError,
    EmbeddedPostgresError,
    DatabaseUrlError,
    OSError,
    ValueError,
)


def fail(message: str, code: int = 1) -> None:
    # Escaped: a message is text, not markup ("pip install 'tekudasai[s3]'" lost its "[s3]").
    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def friendly_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one clear line and a non-zero exit; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except EXPECTED_ERRORS as exc:
            fail(getattr(exc, "message", None) or str(exc) or type(exc).__name__)
        except Exception as exc:
            name = type(exc).__name__
            if "asyncpg" in type(exc).__module__ or "sqlalchemy" in type(exc).__module__:
                fail(f"database error ({name}): {str(exc).splitlines()[0] if str(exc) else ''}")
            raise
        raise AssertionError("unreachable")

    return wrapper


def run(coro: Awaitable[R]) -> R:
    return asyncio.run(coro)  # type: ignore[arg-type]


@asynccontextmanager
async def command_database(settings: Settings | None = None) -> AsyncIterator[Database]:
    """A database for one command; an embedded server this command started is stopped after."""
    settings = settings or get_settings()
    server = embedded_server(settings) if settings.embedded else None
    was_running = server.is_running() if server else True
    database = Database.connect(await resolve_database_url(settings), settings, pool_size=2)
    try:
        yield database
    finally:
        await database.dispose()
        if server is not None and not was_running:
            server.stop()


@asynccontextmanager
async def command_session(database: Database) -> AsyncIterator[AsyncSession]:
    """One transaction for one command."""
    async with database.sessionmaker() as session, session.begin():
        yield session


def cipher_for(settings: Settings) -> PiiCipher:
    return PiiCipher(settings.master_secret())


def is_interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


StageReport = Callable[[str, float, float], None]


@contextmanager
def stage_progress(*, out: Console, counts: bool = False) -> Iterator[StageReport]:
    """A progress bar per stage, each added when its stage first reports `(stage, done, total)`.

    `counts` shows "done/total" (rows); otherwise a percentage (bytes, where totals can grow).
    """
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn() if counts else TaskProgressColumn(),
        TimeElapsedColumn(),
        console=out,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: float, total: float) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield report
