"""`tekudasai db backup | restore | verify`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tekudasai.backup import jobs as backup_jobs
from tekudasai.backup import pitr
from tekudasai.backup.restore import RestoreRefused, restore_backup
from tekudasai.backup.verify import Report, verify_backup, verify_live
from tekudasai.config import get_settings
from tekudasai.db.cli_support import (
    command_database,
    console,
    err_console,
    fail,
    is_interactive,
    run,
    stage_progress,
)
from tekudasai.uploads.dependencies import storage_for


def confirmer(yes: bool):  # type: ignore[no-untyped-def]
    def confirm(question: str) -> bool:
        if yes:
            return True
        if not is_interactive():
            return False
        return typer.confirm(f"{question} Continue?", default=False)

    return confirm


def backup_command(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="backup directory (default TK_DATA_DIR/backups/<UTC time>)"),
    ] = None,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="afterwards, delete backups TK_BACKUP_KEEP does not keep"),
    ] = False,
) -> None:
    """Back up the database and the uploaded files into one directory (plus a base backup for
    point-in-time recovery when the database is embedded)."""
    settings = get_settings()

    async def go() -> None:
        async with command_database(settings) as database:
            with stage_progress(out=err_console) as report:
                outcome = await backup_jobs.perform_backup(
                    settings, url=database.session_url, out=out, prune=prune, progress=report
                )
        manifest = outcome.backup.manifest
        rows = sum(t["rows"] for t in manifest["tables"].values())
        files, revision = manifest["uploads"]["files"], manifest["schemaRevision"]
        console.print(
            f"backup written to {outcome.backup.path} ({len(manifest['tables'])} tables,"
            f" {rows} rows, {files} files, schema {revision})"
        )
        for line in outcome.notes:
            console.print(line)

    run(go())


def restore_command(
    path: Annotated[Path | None, typer.Argument(help="backup directory")] = None,
    to_time: Annotated[
        str | None,
        typer.Option("--to-time", help="point-in-time recovery target (ISO 8601, UTC if no zone)"),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="replace live data without asking")
    ] = False,
    target_url: Annotated[
        str | None, typer.Option("--target-url", help="restore into this database instead")
    ] = None,
) -> None:
    """Restore a backup directory, or (--to-time) the embedded database to a moment in time."""
    if (path is None) == (to_time is None):
        fail("give either a backup directory or --to-time", code=2)
    settings = get_settings()
    try:
        if to_time is not None:
            if target_url:
                fail("--to-time restores the embedded database; --target-url does not apply", 2)
            target = pitr.parse_target_time(to_time)
            with stage_progress(out=err_console) as report:
                result = pitr.restore_to_time(
                    settings, target, confirm=confirmer(yes), progress=report
                )
            console.print(result)
            return
        assert path is not None

        async def go() -> None:
            async with command_database(settings) as database:
                with stage_progress(out=err_console) as report:
                    result = await restore_backup(
                        path=path,
                        target_url=target_url or database.session_url,
                        settings=settings,
                        uploads_dir=settings.uploads_dir,
                        uploads=storage_for(settings),
                        confirm=confirmer(yes),
                        progress=report,
                    )
            migrated = (
                f", migrated {result.revision_from} → {result.revision_to}"
                if result.revision_from != result.revision_to
                else ""
            )
            console.print(
                f"restored database {result.database!r} and {result.files} file(s)"
                f" from {path}{migrated}"
            )

        run(go())
    except RestoreRefused as exc:
        fail(exc.message, code=2)


def verify_command(
    path: Annotated[
        Path | None, typer.Argument(help="a backup directory; omit for the live DB")
    ] = None,
) -> None:
    """Check a backup (restore into a scratch database) or the live database (pg_amcheck)."""
    settings = get_settings()

    async def go() -> Report:
        async with command_database(settings) as database:
            with stage_progress(out=err_console) as report:
                if path is not None:
                    return await verify_backup(
                        path=path, server_url=database.session_url, progress=report
                    )
                return await verify_live(
                    url=database.session_url, uploads=storage_for(settings), progress=report
                )

    result = run(go())
    for line in result.checks:
        console.print(f"[green]ok[/green]      {line}")
    for line in result.warnings:
        console.print(f"[yellow]warning[/yellow] {line}")
    for line in result.problems:
        console.print(f"[red]problem[/red] {line}")
    if not result.ok:
        fail(f"{len(result.problems)} problem(s) found", code=1)
    console.print("verified: no problems found")
