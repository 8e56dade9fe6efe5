"""`tekudasai db …`: migrations and seed data."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from tekudasai.config import get_settings
from tekudasai.core.cli_support import (
    cipher_for,
    command_database,
    command_session,
    console,
    fail,
    friendly_errors,
    run,
)
from tekudasai.db import migrate
from tekudasai.ops import monitoring_commands
from tekudasai.ops import seed as seed_service

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


@db_app.command("seed")
@friendly_errors
def seed_command(
    demo: Annotated[
        bool, typer.Option("--demo", help="sample accounts, forms and tickets")
    ] = False,
    users: Annotated[int, typer.Option(min=0, max=10_000_000, help="bulk customers to add")] = 0,
    tickets: Annotated[int, typer.Option(min=0, max=100_000_000, help="bulk tickets to add")] = 0,
    forms: Annotated[int, typer.Option(min=0, max=10_000, help="bulk forms to add")] = 0,
) -> None:
    """Add demo data (idempotent) and/or bulk data for benchmarks (COPY, with a progress bar)."""
    if not (demo or users or tickets or forms):
        fail("nothing to seed: give --demo and/or --users/--tickets/--forms", code=2)
    settings = get_settings()
    cipher = cipher_for(settings)

    async def go() -> None:
        async with command_database(settings) as database:
            await migrate.upgrade(database.engine)
            if demo:
                async with command_session(database) as session:
                    accounts = await seed_service.seed_demo(session, cipher)
                console.print("Demo data ready. Sign in with:")
                for account in accounts:
                    console.print(
                        f"  {account.role.value:<6} {account.email:<24} {account.password}"
                    )
            if users or tickets or forms:
                with Progress(
                    TextColumn("{task.description:<8}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=console,
                ) as bar:
                    tasks: dict[str, TaskID] = {}

                    def report(stage: str, done: int, total: int) -> None:
                        if stage not in tasks:
                            tasks[stage] = bar.add_task(stage, total=total)
                        bar.update(tasks[stage], completed=done)

                    result = await seed_service.seed_bulk(
                        database, cipher, users=users, tickets=tickets, forms=forms, progress=report
                    )
                summary = f"Seeded {result.users} users, {result.tickets} tickets"
                console.print(
                    f"{summary} in {result.seconds:.1f}s"
                    + (f" (bulk users' password: {seed_service.BULK_PASSWORD})" if users else "")
                )

    run(go())


monitoring_commands.register(db_app)
