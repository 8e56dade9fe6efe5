"""Webhook delivery: how long 1,000 ticket events take to reach a loopback receiver, and what
webhooks cost the requests that cause them.

    PYTHONPATH=src python bench/webhooks_bench.py                 # 1,000 events, 4 rounds
    PYTHONPATH=src python bench/webhooks_bench.py --events 200 --requests 40 --rounds 2

1. Throughput: 200 tickets are filed and then changed (in_progress <-> pending) until there are
   `--events` ticket events, five per ticket, all queued before a worker starts; then the
   queue (dispatch job per event, delivery job per delivery, `--concurrency` at a time) runs
   until the receiver has every delivery. Wall time from the worker's start.
2. Cost on the causing request: POST /api/tickets/my in process (httpx's ASGITransport, as
   bench/request_overhead.py does) with the job queue running in the same process, as under
   `serve`, alternately without and with an enabled webhook for every ticket event. The
   difference is the queue's extra work (deliveries) competing with the requests; the request
   itself does the same work either way (the event row is written with or without webhooks).

The receiver is a separate process (a real HTTP server on 127.0.0.1) that answers 200 at once.
A dedicated TK_DATA_DIR (embedded PostgreSQL) is used; figures from a busy shared machine are
only indicative.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SECRET = "bench-secret-that-is-long-enough-0123456789abcdef"
TICKETS = 200


def receiver(port: int) -> None:
    """Child process: count POSTs, answer GET /count."""
    lock = threading.Lock()
    count = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            with lock:
                count[0] += 1
            self._answer(b"ok")

        def do_GET(self) -> None:
            self._answer(str(count[0]).encode())

        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


_counter: Any = None


async def received(port: int) -> int:
    """The receiver's count (one client for the run: building one loads the CA bundle)."""
    import httpx

    global _counter
    if _counter is None:
        _counter = httpx.AsyncClient(trust_env=False)
    return int((await _counter.get(f"http://127.0.0.1:{port}/count")).text)


async def run(args: argparse.Namespace, url: str, port: int) -> None:
    import httpx
    from sqlalchemy import text
    from tickets_bench import people  # type: ignore[import-not-found]

    from tekudasai.app import create_app
    from tekudasai.config import Settings
    from tekudasai.core.crypto import PiiCipher
    from tekudasai.db.session import Database
    from tekudasai.tasks import make_worker
    from tekudasai.webhooks import service

    def settings_for(background: bool) -> Settings:
        return Settings(
            DATABASE_URL=url,
            TK_DATA_DIR=str(args.data_dir),
            BETTER_AUTH_SECRET=SECRET,
            TK_RATE_LIMITS="off",
            TK_BACKGROUND_JOBS="true" if background else "false",
            TK_BACKUP_INTERVAL="off",
            TK_LOG_LEVEL="WARNING",
            TK_WEBHOOK_ALLOW_PRIVATE="true",
        )

    settings = settings_for(False)
    database = Database.connect(url, settings, pool_size=10)
    who = await people(database)
    cipher = PiiCipher(settings.master_secret())
    events = [
        "ticket.created",
        "ticket.updated",
        "ticket.status_changed",
        "ticket.assigned",
        "comment.created",
    ]
    async with database.sessionmaker() as db, db.begin():
        await db.execute(text("DELETE FROM webhooks"))
        await db.execute(text("DELETE FROM jobs"))
        hook, _ = await service.create_webhook(
            db,
            cipher,
            url=f"http://127.0.0.1:{port}/hook",
            events=events,
            created_by=None,
            allow_private=True,
        )
        hook_id = hook.id
    body = json.dumps(
        {
            "formId": who["form_id"],
            "summary": "Webhook bench printer",
            "formResponse": {"category": "hardware", "description": "It smokes"},
        }
    )
    rep = {"Authorization": f"Bearer {who['reporter']}", "Content-Type": "application/json"}
    agt = {"Authorization": f"Bearer {who['agent']}"}

    # -- 1. throughput ---------------------------------------------------------------------
    app = create_app(settings, database, metrics=False)
    transport = httpx.ASGITransport(app=app)
    before = await received(port)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http,
    ):
        tickets = []
        for _ in range(min(TICKETS, args.events)):
            response = await http.post("/api/tickets/my", content=body, headers=rep)
            assert response.status_code == 200, response.text[:300]
            tickets.append(response.json()["data"]["id"])
        made = len(tickets)
        step = 0
        while made < args.events:
            ticket_id = tickets[made % len(tickets)]
            goal = "in_progress" if step % 2 == 0 else "pending"
            response = await http.patch(
                f"/api/tickets/{ticket_id}", json={"status": goal}, headers=agt
            )
            assert response.status_code == 200, response.text[:300]
            made += 1
            if made % len(tickets) == 0:
                step += 1
    worker = make_worker(database, settings, concurrency=args.concurrency)
    started = time.perf_counter()
    running = asyncio.create_task(worker.run())
    try:
        while await received(port) - before < args.events:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.2)
        seconds = time.perf_counter() - started
        async with database.engine.connect() as conn:
            pending = (
                await conn.execute(
                    text("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
                )
            ).scalar()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    print(
        f"delivery: {args.events} events -> {args.events} deliveries in {seconds:.1f} s "
        f"({args.events / seconds:.0f}/s, worker concurrency {args.concurrency}; "
        f"pending afterwards {pending})"
    )

    # -- 2. cost on the causing request ------------------------------------------------------
    async def enabled(on: bool) -> None:
        async with database.sessionmaker() as db, db.begin():
            await service.update_webhook(db, hook_id, enabled=on, allow_private=True)

    async def drained() -> None:
        while True:
            async with database.engine.connect() as conn:
                busy = (
                    await conn.execute(
                        text("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
                    )
                ).scalar()
            if not busy:
                return
            await asyncio.sleep(0.1)

    live = create_app(settings_for(True), database, metrics=False)
    transport = httpx.ASGITransport(app=live)
    timings: dict[str, list[float]] = {"without webhooks": [], "with webhooks": []}
    async with (
        live.router.lifespan_context(live),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http,
    ):
        for _ in range(10):  # warm-up
            await http.post("/api/tickets/my", content=body, headers=rep)
        for _ in range(args.rounds):
            for name, on in (("without webhooks", False), ("with webhooks", True)):
                await enabled(on)
                await drained()
                for _ in range(args.requests):
                    t0 = time.perf_counter()
                    response = await http.post("/api/tickets/my", content=body, headers=rep)
                    timings[name].append(time.perf_counter() - t0)
                    assert response.status_code == 200
                    # A client's think time: the queue gets the loop between requests.
                    await asyncio.sleep(0.005)
        await drained()
    base = statistics.median(timings["without webhooks"]) * 1000
    for name, values in timings.items():
        ms = statistics.median(values) * 1000
        p90 = statistics.quantiles(values, n=10)[-1] * 1000
        print(
            f"POST /api/tickets/my {name:17}: median {ms:6.2f} ms  p90 {p90:6.2f} ms  "
            f"({(ms / base - 1) * 100:+.1f} %)"
        )
    await database.dispose()


def main(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    from tickets_bench import env_for, free_port, prepare, tekudasai  # type: ignore[import-not-found]

    from tekudasai.config import Settings
    from tekudasai.db.embedded import EmbeddedPostgres
    from tekudasai.db.session import Database

    args.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(env_for(args.data_dir))
    server = EmbeddedPostgres(args.data_dir / "pgdata")
    server.ensure_running()
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--receiver", str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        tekudasai(args.data_dir, "db", "migrate", stdout=subprocess.DEVNULL)
        url = server.url("tekudasai")

        async def seed() -> None:
            settings = Settings(
                DATABASE_URL=url, TK_DATA_DIR=str(args.data_dir), BETTER_AUTH_SECRET=SECRET
            )
            database = Database.connect(url, settings, pool_size=1)
            await prepare(database, args.data_dir, 50, 500)
            await database.dispose()

        asyncio.run(seed())
        asyncio.run(run(args, url, port))
    finally:
        child.terminate()
        child.wait(timeout=10)
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4, help="worker claim loops")
    parser.add_argument("--requests", type=int, default=100, help="per round and case")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "tk-webhooks-bench"
    )
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.receiver:
        receiver(parsed.receiver)
    else:
        main(parsed)
