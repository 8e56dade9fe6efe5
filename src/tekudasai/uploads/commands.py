"""`tekudasai uploads …`: housekeeping of uploaded files."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from tekudasai.config import get_settings, parse_duration
from tekudasai.db.cli_support import (
    command_database,
    command_session,
    console,
    fail,
    friendly_errors,
    run,
)
from tekudasai.uploads import service
from tekudasai.uploads.dependencies import storage_for

uploads_app = typer.Typer(help="Uploaded files.", no_args_is_help=True)


@uploads_app.command("clean")
@friendly_errors
def clean_command(
    older_than: Annotated[
        str, typer.Option("--older-than", help="only uploads older than this (e.g. 12h, 1d, 2w)")
    ] = "1d",
) -> None:
    """Remove uploads no ticket references (database rows and files)."""
    seconds = parse_duration(older_than)
    if seconds is None:
        fail("--older-than must be a duration such as 1d")
        return
    settings = get_settings()
    storage = storage_for(settings)

    async def _clean() -> service.CleanResult:
        async with command_database(settings) as database:
            async with command_session(database) as db:
                result, keys = await service.clean_orphans(
                    db, storage=storage, older_than=timedelta(seconds=seconds)
                )
            # Files go only once the rows are gone for good; a failure here leaves stray files
            # that the next run removes.
            for key in keys:
                await storage.delete(key)
            return result

    result = run(_clean())
    console.print(
        f"Removed {result.uploads} unreferenced upload(s) ({result.bytes / 1048576:.1f} MiB)"
        f" and {result.stray_files} stray file(s) older than {older_than}."
    )
