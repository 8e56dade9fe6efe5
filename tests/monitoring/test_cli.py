"""The `tekudasai` command line, run as a real process against a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from tekudasai.accounts import service as accounts_service
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tekudasai.tickets.models import Ticket, TicketComment, TicketLog
from tests.conftest import TEST_SECRET


def cli(db_url: str, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("TK_", "DATABASE_URL", "BETTER_"))
    }
    environment.update(
        DATABASE_URL=db_url,
        TK_DATA_DIR=str(tmp_path / "data"),
        BETTER_AUTH_SECRET=TEST_SECRET,
        COLUMNS="200",
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "tekudasai", *args],
        capture_output=True,
        text=True,
        env=environment,
        stdin=subprocess.DEVNULL,
        timeout=120,
        cwd=tmp_path,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: int = 1) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip(), "a failure must say why"


def test_db_status_and_migrate(db_url: str, tmp_path: Path) -> None:
    status = cli(db_url, tmp_path, "db", "status")
    assert status.returncode == 0, status.stderr
    assert "up to date" in status.stdout
    assert cli(db_url, tmp_path, "db", "migrate").returncode == 0


def test_downgrade_to_unknown_revision_fails_clearly(db_url: str, tmp_path: Path) -> None:
    assert_clean_failure(cli(db_url, tmp_path, "db", "downgrade", "nonsense"))


async def test_users_create_and_set_role(
    db_url: str, tmp_path: Path, database: Database, cipher: PiiCipher
) -> None:
    created = cli(
        db_url,
        tmp_path,
        "users",
        "create",
        "--email",
        "Root@Desk.Local",
        "--name",
        "Root",
        "--role",
        "agent",
        "--password",
        "long-enough-pw",
    )
    assert created.returncode == 0, created.stderr
    async with database.sessionmaker() as db:
        user = await accounts_service.find_by_email(db, cipher, "root@desk.local")
        assert user is not None and user.role == "agent"

    duplicate = cli(
        db_url,
        tmp_path,
        "users",
        "create",
        "--email",
        "root@desk.local",
        "--name",
        "Again",
        "--password",
        "long-enough-pw",
    )
    assert_clean_failure(duplicate)
    assert "already exists" in duplicate.stderr

    changed = cli(db_url, tmp_path, "users", "set-role", "root@desk.local", "admin")
    assert changed.returncode == 0, changed.stderr
    async with database.sessionmaker() as db:
        user = await accounts_service.find_by_email(db, cipher, "root@desk.local")
        assert user is not None and user.role == "admin"
    # the last administrator cannot be demoted
    assert_clean_failure(cli(db_url, tmp_path, "users", "set-role", "root@desk.local", "user"))


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (
            ["users", "create", "--email", "not-an-email", "--name", "X", "--password", "12345678"],
            1,
        ),
        (["users", "create", "--email", "a@b.c", "--name", "X", "--password", "short"], 1),
        (
            [
                "users",
                "create",
                "--email",
                "a@b.c",
                "--name",
                "X",
                "--role",
                "boss",
                "--password",
                "12345678",
            ],
            2,
        ),
        (["users", "create", "--email", "a@b.c", "--name", "X"], 2),  # no terminal to prompt
        (["users", "set-role", "nobody@example.com", "agent"], 1),
        (["users", "set-role", "nobody@example.com", "emperor"], 2),
        (["db", "seed"], 2),
    ],
)
def test_bad_input_gives_one_clear_line(
    db_url: str, tmp_path: Path, args: list[str], code: int
) -> None:
    assert_clean_failure(cli(db_url, tmp_path, *args), code)


def test_production_mode_refuses_missing_secret(db_url: str, tmp_path: Path) -> None:
    environment = {"TK_ENV": "production", "BETTER_AUTH_URL": "https://desk.example"}
    result = subprocess.run(
        [sys.executable, "-m", "tekudasai", "db", "status"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={
            "PATH": os.environ["PATH"],
            "DATABASE_URL": db_url,
            "TK_DATA_DIR": str(tmp_path),
            **environment,
        },
    )
    assert_clean_failure(result)
    assert "BETTER_AUTH_SECRET" in result.stderr


async def test_demo_seed_is_idempotent(db_url: str, tmp_path: Path, database: Database) -> None:
    first = cli(db_url, tmp_path, "db", "seed", "--demo")
    assert first.returncode == 0, first.stderr
    assert "admin@tekudasai.local" in first.stdout
    async with database.sessionmaker() as db:
        counts = [
            await db.scalar(select(func.count()).select_from(model))
            for model in (Ticket, TicketComment, TicketLog)
        ]
        statuses = set((await db.scalars(select(Ticket.status))).all())
    assert counts[0] == 5 and counts[1] >= 5
    assert statuses == {"open", "in_progress", "pending", "resolved", "closed"}
    assert cli(db_url, tmp_path, "db", "seed", "--demo").returncode == 0
    async with database.sessionmaker() as db:
        again = [
            await db.scalar(select(func.count()).select_from(model))
            for model in (Ticket, TicketComment, TicketLog)
        ]
    assert again == counts


async def test_bulk_seed_loads_rows_with_copy(
    db_url: str, tmp_path: Path, database: Database
) -> None:
    result = cli(db_url, tmp_path, "db", "seed", "--users", "120", "--tickets", "2500")
    assert result.returncode == 0, result.stderr
    assert "Seeded 120 users, 2500 tickets" in result.stdout
    async with database.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(Ticket)) == 2500
        assert await db.scalar(select(func.count()).select_from(TicketLog)) == 2500
        # COPY fired the search-vector trigger for every row
        assert await db.scalar(select(func.count()).where(Ticket.search_vector.is_(None))) == 0
        # the identity moved past the explicitly copied ids, so a normal insert gets a fresh id
        last = await db.scalar(
            text("SELECT pg_sequence_last_value(pg_get_serial_sequence('tickets', 'id'))")
        )
        assert last == await db.scalar(select(func.max(Ticket.id)))
