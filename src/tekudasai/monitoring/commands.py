"""`tekudasai db top`: the heaviest statements from pg_stat_statements."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table

from tekudasai.config import get_settings
from tekudasai.db.cli_support import command_database, console, fail, run
from tekudasai.monitoring.querystats import Statement, StatementStatsUnavailable, top_statements

WATCH_INTERVAL_S = 2.0


def statements_table(statements: list[Statement], *, width: int = 80) -> Table:
    table = Table(title="Heaviest statements (pg_stat_statements, this database)", expand=True)
    table.add_column("total ms", justify="right", no_wrap=True)
    table.add_column("%", justify="right", no_wrap=True)
    table.add_column("calls", justify="right", no_wrap=True)
    table.add_column("mean ms", justify="right", no_wrap=True)
    table.add_column("max ms", justify="right", no_wrap=True)
    table.add_column("rows", justify="right", no_wrap=True)
    table.add_column("statement", overflow="fold")
    for stmt in statements:
        table.add_row(
            f"{stmt.total_ms:,.1f}",
            f"{stmt.share * 100:.1f}",
            f"{stmt.calls:,}",
            f"{stmt.mean_ms:,.2f}",
            f"{stmt.max_ms:,.2f}",
            f"{stmt.rows:,}",
            stmt.query[: width * 3],
        )
    if not statements:
        table.caption = "no statements recorded yet"
    return table


def top_command(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="how many statements")] = 10,
    watch: Annotated[bool, typer.Option("--watch", help="refresh every 2 s until Ctrl-C")] = False,
) -> None:
    """Print the heaviest statements (pg_stat_statements)."""
    settings = get_settings()

    async def go() -> None:
        async with command_database(settings) as database:
            try:
                statements = await top_statements(
                    database.engine, limit=limit, embedded=settings.embedded
                )
            except StatementStatsUnavailable as exc:
                fail(exc.message)
            if not watch:
                console.print(statements_table(statements))
                return
            with Live(statements_table(statements), console=console, auto_refresh=False) as live:
                while True:
                    await asyncio.sleep(WATCH_INTERVAL_S)
                    statements = await top_statements(database.engine, limit=limit)
                    live.update(statements_table(statements), refresh=True)

    try:
        run(go())
    except KeyboardInterrupt:
        return
