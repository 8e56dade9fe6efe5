"""`tekudasai` command line: every group is assembled here, from command functions that live
with their packages (none registers itself)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated

import typer

from tekudasai.accounts.commands import keys_app, users_app
from tekudasai.backup import commands as backup_commands
from tekudasai.config import get_settings
from tekudasai.db.cli_support import friendly_errors
from tekudasai.db.commands import db_app
from tekudasai.inbound.commands import mail_app
from tekudasai.jobs.commands import jobs_app
from tekudasai.monitoring import commands as monitoring_commands
from tekudasai.seed_commands import seed_command
from tekudasai.uploads.commands import uploads_app

app = typer.Typer(
    help="Te Kudasai: an open-source service desk.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# `db`: migrations come from db/, the rest from the layers above it.
db_app.command("seed")(friendly_errors(seed_command))
db_app.command("backup")(friendly_errors(backup_commands.backup_command))
db_app.command("restore")(friendly_errors(backup_commands.restore_command))
db_app.command("verify")(friendly_errors(backup_commands.verify_command))
db_app.command("top")(friendly_errors(monitoring_commands.top_command))
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(uploads_app, name="uploads")
app.add_typer(keys_app, name="keys")
app.add_typer(jobs_app, name="jobs")
app.add_typer(mail_app, name="mail")


@app.command("serve")
@friendly_errors
def serve_command(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="default: one per available CPU")
    ] = None,
    demo: Annotated[bool, typer.Option("--demo", help="seed the demo data")] = False,
) -> None:
    """Serve the web UI and the API (migrates on start)."""
    from tekudasai.core.runtime import available_cpus
    from tekudasai.server import serve

    serve(get_settings(), host=host, port=port, workers=workers or available_cpus(), demo=demo)


@app.command("worker")
@friendly_errors
def worker_command(
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="jobs run at once")] = 2,
    lease: Annotated[
        float,
        typer.Option(
            min=1.0, max=3600.0, help="seconds a running job stays ours without a heartbeat"
        ),
    ] = 60.0,
) -> None:
    """Run the background job queue alone (mail, backups, sampling, alerts), until stopped."""
    from tekudasai.db.cli_support import command_database, run
    from tekudasai.tasks import NEEDS_WEB_PROCESS, make_worker

    async def go() -> None:
        async with command_database() as database:
            worker = make_worker(
                database,
                get_settings(),
                concurrency=concurrency,
                lease=lease,
                skip=NEEDS_WEB_PROCESS,
            )
            task = asyncio.create_task(worker.run())
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, task.cancel)
            with contextlib.suppress(asyncio.CancelledError):
                await task

    run(go())


def main() -> None:
    from tekudasai.tasks import install_reactors

    install_reactors()  # commands that change tickets (mail ingest, seed) run the reactors too
    app()
