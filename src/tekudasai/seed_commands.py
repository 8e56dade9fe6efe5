"""`tekudasai db seed`: demo data and bulk data for benchmarks (the command; data in seed.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from tekudasai import seed as seed_service
from tekudasai.config import get_settings
from tekudasai.db import migrate
from tekudasai.db.cli_support import (
    cipher_for,
    command_database,
    command_session,
    console,
    fail,
    run,
    stage_progress,
)


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
                with stage_progress(out=console, counts=True) as report:
                    result = await seed_service.seed_bulk(
                        database, cipher, users=users, tickets=tickets, forms=forms, progress=report
                    )
                summary = f"Seeded {result.users} users, {result.tickets} tickets"
                console.print(
                    f"{summary} in {result.seconds:.1f}s"
                    + (f" (bulk users' password: {seed_service.BULK_PASSWORD})" if users else "")
                )

    run(go())
