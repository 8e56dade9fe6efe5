"""`tekudasai users …`."""

from __future__ import annotations

from typing import Annotated

import typer

from tekudasai.accounts import keys, service
from tekudasai.config import get_settings
from tekudasai.db.cli_support import (
    cipher_for,
    command_database,
    command_session,
    console,
    fail,
    friendly_errors,
    is_interactive,
    run,
)

users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="Encryption keys for personal data.", no_args_is_help=True)

ROLES = ("user", "agent", "admin")


@users_app.command("create")
@friendly_errors
def create_command(
    email: Annotated[str, typer.Option(help="e-mail address (sign-in name)")],
    name: Annotated[str, typer.Option(help="display name")],
    role: Annotated[str, typer.Option(help="admin, agent or user")] = "user",
    password: Annotated[str | None, typer.Option(help="prompted for when omitted")] = None,
) -> None:
    """Create a user who signs in with e-mail and password."""
    if role not in ROLES:
        fail(f"unknown role {role!r}; use admin, agent or user", code=2)
    service.check_email(email)
    if password is None:
        if not is_interactive():
            fail("no --password given and no terminal to ask for one", code=2)
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    service.check_password(password)
    settings = get_settings()

    async def go() -> None:
        async with command_database(settings) as database, command_session(database) as session:
            user = await service.create_user(
                session,
                cipher_for(settings),
                email=email,
                name=name,
                password=password,
                role=role,
                email_verified=True,
            )
        console.print(f"created {role} {email} (id {user.id})")

    run(go())


@users_app.command("set-role")
@friendly_errors
def set_role_command(
    email: Annotated[str, typer.Argument(help="the user's e-mail")],
    role: Annotated[str, typer.Argument(help="admin, agent or user")],
) -> None:
    """Change a user's role."""
    if role not in ROLES:
        fail(f"unknown role {role!r}; use admin, agent or user", code=2)
    settings = get_settings()

    async def go() -> None:
        async with command_database(settings) as database, command_session(database) as session:
            await service.set_role(session, cipher_for(settings), email=email, role=role)
        console.print(f"{email} is now {role}")

    run(go())


@keys_app.command("rotate")
@friendly_errors
def rotate_command(
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="rows per transaction")] = 500,
    settle_seconds: Annotated[
        float,
        typer.Option(min=0, help="wait for running workers to pick up the new key, then recheck"),
    ] = keys.KEY_REFRESH_SECONDS + 5,
) -> None:
    """Re-encrypt personal data under a new key id, in small batches, while the service runs."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    settings = get_settings()

    async def go() -> None:
        async with command_database(settings) as database:
            cipher = cipher_for(settings)
            async with database.sessionmaker() as db:
                await keys.refresh_current_key(db, cipher, max_age=0)
            total = await keys.count_stale(database, -1)
            with Progress(
                TextColumn("re-encrypting"), BarColumn(), MofNCompleteColumn(), console=console
            ) as progress:
                task = progress.add_task("rows", total=total)
                result = await keys.rotate(
                    database,
                    cipher,
                    batch_size=batch_size,
                    settle_seconds=settle_seconds,
                    progress=lambda n: progress.advance(task, n),
                )
            left = await keys.count_stale(database, result.new_key_id)
        console.print(
            f"key id {result.new_key_id} is current; re-encrypted {result.users} users and "
            f"{result.accounts} sign-in accounts; {left} rows left under older keys"
        )
        if left:
            fail(f"{left} rows still use an older key; run the command again", code=1)

    run(go())
