"""`tekudasai db migrate|downgrade|status`. The rest of the `db` group (seed, backup, restore,
verify, top) comes from the layers above and is added in `tekudasai.cli`."""

from __future__ import annotations

from typing import Annotated

import typer

from tekudasai.db import migrate
from tekudasai.db.cli_support import (
    command_database,
    console,
    fail,
    friendly_errors,
    run,
)

db_app = typer.Typer(help="Database: migrations, seed data, backups.", no_args_is_help=True)


@db_app.command("migrate")
@friendly_errors
def migrate_command() -> None:
    """Apply every pending migration."""

    async def go() -> None:
        async with command_database() as database:
            before = await migrate.current_revision(database.engine)
            await migrate.upgrade(database.engine)
            after = await migrate.current_revision(database.engine)
        console.print(
            f"schema at {after}" + ("" if before == after else f" (was {before or 'empty'})")
        )

    run(go())


@db_app.command("downgrade")
@friendly_errors
def downgrade_command(
    revision: Annotated[str, typer.Argument(help="target revision, e.g. -1 or base")],
) -> None:
    """Roll the schema back to REVISION."""
    if not (revision.startswith("-") or migrate.known_revision(revision)):
        fail(f"unknown revision {revision!r}")

    async def go() -> None:
        async with command_database() as database:
            await migrate.downgrade(database.engine, revision)
            console.print(
                f"schema at {await migrate.current_revision(database.engine) or 'base (empty)'}"
            )

    run(go())


@db_app.command("status")
@friendly_errors
def status_command() -> None:
    """Show the current and the head schema revision."""

    async def go() -> None:
        async with command_database() as database:
            state = await migrate.status(database.engine)
        console.print(f"current: {state.current or 'none (empty database)'}")
        console.print(f"head:    {state.head}")
        console.print(
            "up to date" if state.up_to_date else "pending migrations: run `tekudasai db migrate`"
        )

    run(go())
