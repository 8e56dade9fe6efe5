"""`tekudasai mail ingest` as an MTA runs it: a real process, the message on stdin or in a
file, and the sysexits codes (0 handled or ignored, 65 not a message, 75 try again later)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tekudasai.db.session import Database
from tests.conftest import TEST_SECRET
from tests.factories import Person
from tests.inbound.conftest import build, rows, value


def ingest(
    db_url: str, tmp_path: Path, *args: str, stdin: bytes | None = None, **env: str
) -> subprocess.CompletedProcess[bytes]:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("TK_", "DATABASE_URL", "BETTER_"))
    }
    environment.update(
        DATABASE_URL=db_url,
        TK_DATA_DIR=str(tmp_path / "data"),
        BETTER_AUTH_SECRET=TEST_SECRET,
        TK_LOG_FORMAT="text",
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "tekudasai", "mail", "ingest", *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=environment,
        timeout=120,
        cwd=tmp_path,
    )


def test_stdin_and_file_exit_0_and_print_the_action(
    db_url: str, tmp_path: Path, reporter: Person
) -> None:
    raw = build(sender=reporter.email, subject="From the pipe")
    first = ingest(db_url, tmp_path, stdin=raw)
    assert first.returncode == 0, first.stderr.decode()
    line = first.stdout.decode().strip().splitlines()[-1]
    assert line.startswith("ticket #")
    tid = int(line.removeprefix("ticket #"))
    path = tmp_path / "reply.eml"
    path.write_bytes(build(sender=reporter.email, subject=f"Re: [TK #{tid}]", body="thanks"))
    second = ingest(db_url, tmp_path, str(path))
    assert second.returncode == 0, second.stderr.decode()
    assert second.stdout.decode().strip().splitlines()[-1] == f"comment #{tid}"
    again = ingest(db_url, tmp_path, str(path))  # ignored is not an error
    assert again.returncode == 0
    assert again.stdout.decode().strip().splitlines()[-1] == (
        "ignored: already processed (same Message-ID)"
    )
    bounce = ingest(
        db_url, tmp_path, stdin=build(sender="x@example.net", headers={"Precedence": "bulk"})
    )
    assert bounce.returncode == 0
    assert bounce.stdout.decode().strip().endswith("ignored: Precedence: bulk")
    assert "inbound mail ignored (Precedence: bulk)" in bounce.stderr.decode()


async def test_the_stored_reply(
    db_url: str, tmp_path: Path, database: Database, reporter: Person
) -> None:
    raw = build(sender=reporter.email, subject="Stored?", body="Yes, stored.")
    assert ingest(db_url, tmp_path, stdin=raw).returncode == 0
    answers = await rows(database, "SELECT form_response, channel FROM tickets")
    assert [(a.form_response["description"], a.channel) for a in answers] == [
        ("Yes, stored.", "email")
    ]


def test_not_a_message_exits_65(db_url: str, tmp_path: Path) -> None:
    for body in (b"", b"no headers at all, just text"):
        result = ingest(db_url, tmp_path, stdin=body)
        assert result.returncode == 65, result.stdout + result.stderr
        assert b"not a message" in result.stderr and b"Traceback" not in result.stderr
    missing = ingest(db_url, tmp_path, str(tmp_path / "nope.eml"))
    assert missing.returncode == 65 and b"cannot read" in missing.stderr


async def test_database_down_exits_75_and_keeps_nothing(
    db_url: str, tmp_path: Path, database: Database
) -> None:
    down = "postgresql://postgres@127.0.0.1:9/nowhere"  # nothing listens on port 9
    result = ingest(down, tmp_path, stdin=build(sender="a@example.net"), TK_DB_CONNECT_TIMEOUT="2")
    assert result.returncode == 75, result.stdout + result.stderr
    assert b"temporary failure" in result.stderr and b"Traceback" not in result.stderr
    # An unparseable message is still 65 with the database down: it will never get better.
    bad = ingest(down, tmp_path, stdin=b"junk")
    assert bad.returncode == 65
    assert await value(database, "SELECT count(*) FROM tickets") == 0
