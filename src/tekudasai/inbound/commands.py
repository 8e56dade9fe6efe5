"""`tekudasai mail ingest [FILE]`: one message from a file or stdin, for an MTA pipe.

Exit codes as MTAs read them (sysexits): 0 handled (ignored included: that is a decision, not
an error), 65 EX_DATAERR not a message (the MTA bounces it), 75 EX_TEMPFAIL anything that may
work later, such as the database being down (the MTA keeps the message and retries).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tekudasai.inbound.message import MAX_MESSAGE_BYTES, Unparseable

if TYPE_CHECKING:
    from tekudasai.inbound.service import Outcome

EX_OK = 0
EX_DATAERR = 65
EX_TEMPFAIL = 75

mail_app = typer.Typer(help="Inbound mail.", no_args_is_help=True)


def _read(file: Path | None) -> bytes:
    if file is None:
        return sys.stdin.buffer.read(MAX_MESSAGE_BYTES + 1)
    with file.open("rb") as handle:
        return handle.read(MAX_MESSAGE_BYTES + 1)


@mail_app.command("ingest")
def ingest_command(
    file: Annotated[
        Path | None, typer.Argument(help="an RFC 5322 message (.eml); stdin when absent")
    ] = None,
) -> None:
    """Read one message and file it: a comment, a new ticket, or ignored (with the reason)."""
    try:
        raw = _read(file)
    except OSError as exc:
        typer.echo(f"error: cannot read {file}: {exc.strerror or exc}", err=True)
        raise typer.Exit(EX_DATAERR) from None
    from tekudasai.inbound import service

    try:
        service.read(raw)  # before any database work: a bad message is 65, never 75
    except Unparseable as exc:
        typer.echo(f"error: not a message: {exc.reason}", err=True)
        raise typer.Exit(EX_DATAERR) from None
    try:
        outcome = _ingest(raw)
    except Unparseable as exc:
        typer.echo(f"error: not a message: {exc.reason}", err=True)
        raise typer.Exit(EX_DATAERR) from None
    except Exception as exc:  # the MTA keeps the message and tries again later
        first = str(exc).splitlines()[0] if str(exc) else ""
        typer.echo(f"error: temporary failure ({type(exc).__name__}): {first}", err=True)
        raise typer.Exit(EX_TEMPFAIL) from None
    typer.echo(outcome.line())


def _ingest(raw: bytes) -> Outcome:
    from tekudasai.config import get_settings
    from tekudasai.core.logging import configure_logging
    from tekudasai.db.cli_support import command_database, run
    from tekudasai.inbound import service

    async def go() -> service.Outcome:
        settings = get_settings()
        # The reason a message was ignored goes to the log (stderr) too, not only to stdout.
        configure_logging(settings.log_level, settings.log_format)
        async with command_database(settings) as database:
            return await service.ingest(service.inbound_for(database, settings), raw)

    return run(go())
