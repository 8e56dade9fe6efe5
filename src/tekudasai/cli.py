"""`tekudasai` command line. Subcommands live with their domains."""

from __future__ import annotations

from typing import Annotated

import typer

from tekudasai.accounts.commands import keys_app, users_app
from tekudasai.config import get_settings
from tekudasai.core.cli_support import friendly_errors
from tekudasai.db.commands import db_app
from tekudasai.ops.backup_commands import register as register_backup_commands
from tekudasai.uploads.commands import uploads_app

app = typer.Typer(
    help="Te Kudasai: an open-source service desk.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
register_backup_commands(db_app)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(uploads_app, name="uploads")
app.add_typer(keys_app, name="keys")


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


def main() -> None:
    app()
