"""Inbound mail: messages per second and p99 latency through `mail ingest` and the HTTP endpoint.

    PYTHONPATH=src python bench/ingest_bench.py                     # 10,000 messages per path
    PYTHONPATH=src python bench/ingest_bench.py --messages 300 --processes 5   # a quick check

A mix like a help desk's inbox: 60 % new tickets from a few hundred senders, 40 % replies
(half threaded by `[TK #N]`, half by In-Reply-To only), one in ten with a small PNG attached.
Three paths, each against the same embedded PostgreSQL (fresh database per path):
- `ingest`: the function behind `mail ingest`, in process, one message after another;
- `cli`: a few real `tekudasai mail ingest` processes (start-up included, as an MTA pays it);
- `http`: POST /api/inbound/email through the app (ASGI, in process), `--concurrency` clients.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-that-is-long-enough-0123456789abcdef"
TOKEN = "bench-inbound-token-0123456789"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(2048)


class Mix:
    """Messages made one at a time, replies naming tickets the run has already made."""

    def __init__(self, seed: int, tag: str) -> None:
        self.random = random.Random(seed)
        self.tag = tag
        self.n = 0
        self.tickets: list[tuple[int, str, str]] = []  # (ticket id, its sender, its Message-ID)

    def next(self) -> tuple[bytes, str | None, str]:
        self.n += 1
        message = EmailMessage()
        message_id = f"<{self.tag}-{self.n}@bench.example>"
        reply = self.tickets and self.random.random() < 0.4
        if reply:
            ticket_id, sender, first_id = self.random.choice(self.tickets)
            if self.random.random() < 0.5:
                message["Subject"] = f"Re: [TK #{ticket_id}] Printer"
            else:
                message["Subject"] = "Re: Printer"
                message["In-Reply-To"] = first_id
            body = "It is still broken.\n\nOn Mon, Alice wrote:\n> restart it\n> please\n"
        else:
            sender = f"sender{self.random.randrange(300)}@bench.example"
            message["Subject"] = f"Printer {self.n} does not print"
            body = "The printer on floor 2 shows E-42.\n\n-- \nA. Sender\n"
        message["From"] = sender
        message["To"] = "support@desk.example"
        message["Date"] = formatdate()
        message["Message-ID"] = message_id
        message.set_content(body)
        if self.random.random() < 0.1:
            message.add_attachment(PNG, maintype="image", subtype="png", filename="shot.png")
        return message.as_bytes(), None if reply else sender, message_id

    def made(self, outcome_ticket: int | None, sender: str | None, message_id: str) -> None:
        if outcome_ticket is not None and sender is not None:
            self.tickets.append((outcome_ticket, sender, message_id))


def summary(name: str, latencies: list[float], seconds: float, actions: dict[str, int]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    p50 = statistics.median(ordered) * 1000
    return (
        f"{name:8} {len(latencies):6d} msgs {len(latencies) / seconds:8.1f} msg/s "
        f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  {actions}"
    )


def settings_for(url: str, data_dir: Path) -> Any:
    from tekudasai.config import Settings

    return Settings(
        DATABASE_URL=url,
        TK_DATA_DIR=str(data_dir),
        BETTER_AUTH_SECRET=SECRET,
        TK_RATE_LIMITS="off",
        TK_BACKGROUND_JOBS="false",
        TK_LOG_LEVEL="WARNING",
        TK_INBOUND_MAIL_TOKEN=TOKEN,
        TK_MAIL_NEW_TICKETS_PER_HOUR=100_000,
    )


async def run_ingest(url: str, data_dir: Path, messages: int) -> str:
    from tekudasai.db.session import Database
    from tekudasai.inbound import service

    settings = settings_for(url, data_dir)
    database = Database.connect(url, settings, pool_size=2)
    inbound = service.inbound_for(database, settings)
    mix, latencies, actions = Mix(1, "fn"), [], {}  # type: ignore[var-annotated]
    started = time.perf_counter()
    for _ in range(messages):
        raw, sender, message_id = mix.next()
        t0 = time.perf_counter()
        outcome = await service.ingest(inbound, raw)
        latencies.append(time.perf_counter() - t0)
        key = outcome.action if not outcome.reason else f"{outcome.action} ({outcome.reason})"
        actions[key] = actions.get(key, 0) + 1
        mix.made(outcome.ticket_id if outcome.action == "ticket" else None, sender, message_id)
    elapsed = time.perf_counter() - started
    await database.dispose()
    return summary("ingest", latencies, elapsed, actions)


def run_cli(url: str, data_dir: Path, processes: int) -> str:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "TK_DATA_DIR": str(data_dir),
        "BETTER_AUTH_SECRET": SECRET,
        "TK_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT / "src"),
    }
    mix, latencies, actions = Mix(2, "cli"), [], {}  # type: ignore[var-annotated]
    started = time.perf_counter()
    for _ in range(processes):
        raw, _sender, _message_id = mix.next()
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "tekudasai", "mail", "ingest"],
            input=raw,
            env=env,
            capture_output=True,
            check=True,
        )
        latencies.append(time.perf_counter() - t0)
        action = done.stdout.decode().strip().splitlines()[-1].split()[0].rstrip(":")
        actions[action] = actions.get(action, 0) + 1
    return summary("cli", latencies, time.perf_counter() - started, actions)


async def run_http(url: str, data_dir: Path, messages: int, concurrency: int) -> str:
    import httpx

    from tekudasai.app import create_app
    from tekudasai.db.session import Database

    settings = settings_for(url, data_dir)
    database = Database.connect(url, settings, pool_size=concurrency + 2)
    app = create_app(settings, database, metrics=False)
    mix, latencies, actions = Mix(3, "http"), [], {}  # type: ignore[var-annotated]
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "message/rfc822"}
    transport = httpx.ASGITransport(app=app)
    remaining = [messages]

    async def client_loop(client: httpx.AsyncClient) -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            raw, sender, message_id = mix.next()
            t0 = time.perf_counter()
            response = await client.post("/api/inbound/email", content=raw, headers=headers)
            latencies.append(time.perf_counter() - t0)
            data = response.json()["data"]
            key = data["action"] if data["action"] != "ignored" else f"ignored ({data['reason']})"
            actions[key] = actions.get(key, 0) + 1
            mix.made(
                data.get("ticketId") if data["action"] == "ticket" else None, sender, message_id
            )

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client,
    ):
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    await database.dispose()
    return summary(f"http c{concurrency}", latencies, elapsed, actions)


async def fresh_database(server: Any, name: str, data_dir: Path) -> str:
    import asyncpg

    from tekudasai.db import migrate
    from tekudasai.db.session import Database

    conn = await asyncpg.connect(server.url("postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url: str = server.url(name)
    database = Database.connect(url, settings_for(url, data_dir), pool_size=1)
    await migrate.upgrade(database.engine)
    await database.dispose()
    return url


def main(args: argparse.Namespace) -> None:
    from tekudasai.db.embedded import EmbeddedPostgres

    args.data_dir.mkdir(parents=True, exist_ok=True)
    server = EmbeddedPostgres(args.data_dir / "pgdata")
    server.ensure_running()
    lines = []
    try:
        url = asyncio.run(fresh_database(server, "bench_ingest", args.data_dir))
        lines.append(asyncio.run(run_ingest(url, args.data_dir, args.messages)))
        print(lines[-1], flush=True)
        if args.processes:
            lines.append(run_cli(url, args.data_dir, args.processes))
            print(lines[-1], flush=True)
        url = asyncio.run(fresh_database(server, "bench_ingest_http", args.data_dir))
        lines.append(asyncio.run(run_http(url, args.data_dir, args.messages, args.concurrency)))
        print(lines[-1], flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "tk-ingest")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=20, help="`mail ingest` processes")
    parser.add_argument("--concurrency", type=int, default=8, help="HTTP clients at once")
    main(parser.parse_args())
