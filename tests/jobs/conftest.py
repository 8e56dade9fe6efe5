"""Queue fixtures: a real SMTP server on a chosen loopback port, the CLI as a subprocess."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope
from sqlalchemy import select

from tekudasai.config import Settings
from tekudasai.db.session import Database
from tekudasai.jobs.models import Job
from tests.conftest import TEST_SECRET

SRC = Path(__file__).resolve().parents[2] / "src"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"


async def start_smtp(port: int, inbox: Inbox) -> asyncio.Server:
    """aiosmtpd on 127.0.0.1:port in the running loop."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: SMTP(inbox), "127.0.0.1", port, reuse_address=True)


async def start_silent_server(port: int) -> asyncio.Server:
    """Accepts connections and never answers: an SMTP client waits for the greeting."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the peer goes away

    return await asyncio.start_server(hold, "127.0.0.1", port, reuse_address=True)


async def jobs_named(database: Database, name: str) -> list[Job]:
    async with database.sessionmaker() as session:
        return list(await session.scalars(select(Job).where(Job.name == name).order_by(Job.id)))


async def wait_until(
    condition: Callable[[], object], seconds: float = 20.0, step: float = 0.05
) -> None:
    for _ in range(int(seconds / step)):
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(step)
    raise AssertionError("timed out")


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TK_", "DATABASE_URL", "BETTER_AUTH"))
    }
    assert settings.database_url is not None
    env.update(
        DATABASE_URL=settings.database_url,
        TK_DATA_DIR=str(settings.data_dir),
        BETTER_AUTH_SECRET=TEST_SECRET,
        TK_ENV="test",
        TK_BACKUP_INTERVAL="off",
        PYTHONPATH=str(SRC),
        COLUMNS="200",
        **extra,
    )
    return env


async def run_cli(settings: Settings, *args: str, **env: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tekudasai",
        *args,
        env=cli_env(settings, **env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode(), err.decode()
