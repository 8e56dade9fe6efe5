"""Notifications: mails per second through the queue, and what they cost the causing request.

    PYTHONPATH=src .venv/bin/python bench/notifications_bench.py                 # 10,000 mails
    PYTHONPATH=src .venv/bin/python bench/notifications_bench.py --mails 500 --requests 100

1. Throughput: N agent replies (comments and their ticket events, inserted by SQL) are
   dispatched by the real worker; the notifications handler queues one mail each to the
   reporter, and the worker sends them to an aiosmtpd server on loopback (a separate process
   that only counts). Figures: events dispatched per second and mails delivered per second.
0. The queue alone (`--parts queue`): N jobs of a task that does nothing, run by the real
   worker: jobs per second and this process's CPU per job, the floor under every task.
1b. The dispatch alone (`--parts dispatch`): as 1., but the worker only dispatches (the mail
   jobs stay queued; the queue is emptied afterwards): events per second and CPU per dispatch.
2. Request cost: the agent reply `POST /api/tickets/{id}/comments`, driven in process through
   httpx's ASGITransport (as bench/request_overhead.py does), without any event handler and
   with the notifications handler, in two modes: "request only" (the queue is drained after
   the timed requests: what the request itself costs; it only enqueues the dispatch job either
   way) and "worker in the loop" (a worker runs the queue in the same event loop, as `serve`
   does, so the handler's work and the SMTP sends share the CPU with the requests).

An embedded PostgreSQL in a temporary TK_DATA_DIR (removed afterwards) holds the data.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SECRET = "bench-secret-that-is-long-enough-0123456789abcdef"
TICKETS = 100
ELEMENTS = [
    {"id": "e1", "type": "textarea", "name": "description", "label": "What?", "required": True}
]


# -- the SMTP sink (its own process, so it does not share the worker's CPU time) -------------


def smtp_sink(port: int, count_file: Path) -> None:
    from aiosmtpd.smtp import SMTP, Envelope

    received = [0]

    class Counter:
        async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
            received[0] += 1
            return "250 OK"

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(Counter()), "127.0.0.1", port)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        while not stop.is_set():
            await asyncio.to_thread(count_file.write_text, str(received[0]))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
        server.close()
        await asyncio.to_thread(count_file.write_text, str(received[0]))

    asyncio.run(run())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_sink(port: int, count_file: Path) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--sink", str(port), "--count-file", str(count_file)
    )
    for _ in range(200):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return process
        await asyncio.sleep(0.05)
    raise RuntimeError("the SMTP sink did not start")


def delivered(count_file: Path) -> int:
    try:
        return int(count_file.read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


# -- data ------------------------------------------------------------------------------------


async def seed(database: Any, cipher: Any) -> dict[str, Any]:
    from sqlalchemy import text

    from tekudasai.accounts import service as accounts
    from tekudasai.forms import service as forms
    from tekudasai.tickets import service as tickets

    async with database.sessionmaker() as db, db.begin():
        agent = await accounts.create_user(
            db,
            cipher,
            email="agent@bench.test",
            name="Bench Agent",
            password="x" * 12,
            role="agent",
            email_verified=True,
        )
        form = await forms.create_form(
            db,
            creator_id=agent.id,
            name="Bench",
            description="",
            disabled=False,
            elements=ELEMENTS,
        )
        reporters = [
            await accounts.create_user(
                db,
                cipher,
                email=f"customer{n}@bench.test",
                name=f"Customer {n}",
                password="x" * 12,
                email_verified=True,
            )
            for n in range(TICKETS)
        ]
        ids = []
        for n, reporter in enumerate(reporters):
            ticket = await tickets.create_ticket(
                db,
                reporter_id=reporter.id,
                form_id=form["id"],
                summary=f"Bench ticket {n}",
                form_response={"description": "It is broken"},
            )
            ids.append(ticket.id)
        token, _ = await accounts.create_session(db, user_id=agent.id)
    # The receipts of these tickets are not part of the figures.
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE ticket_events SET dispatched_at = now()"))
        await conn.execute(text("DELETE FROM jobs"))
    return {"agent_id": agent.id, "agent_token": token, "ticket_ids": ids}


INSERT_REPLIES = """
WITH c AS (
    INSERT INTO ticket_comments (ticket_id, author_id, body)
    SELECT t.id, :agent, 'Bench reply ' || g
      FROM generate_series(1, :n) g
      JOIN LATERAL (
          SELECT (CAST(:ids AS int[]))[1 + (g % cardinality(CAST(:ids AS int[])))] AS id
      ) t ON true
    RETURNING id, ticket_id
), e AS (
    INSERT INTO ticket_events (ticket_id, type, actor_id, internal, data)
    SELECT ticket_id, 'comment.created', :agent, false,
           jsonb_build_object('commentId', id, 'byReporter', false)
      FROM c
    RETURNING id
)
INSERT INTO jobs (name, args, max_attempts)
SELECT 'tickets.dispatch_event', jsonb_build_object('eventId', id), 5 FROM e
"""


async def wait_for(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.1)


async def queue_state(database: Any) -> dict[str, int]:
    from sqlalchemy import text

    async with database.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT name || ':' || status, count(*) FROM jobs GROUP BY 1")
        )
        return {str(k): int(v) for k, v in rows}


# -- 0. the queue alone ----------------------------------------------------------------------


async def queue_floor(database: Any, settings: Any, args: Any) -> None:
    from sqlalchemy import text

    from tekudasai.jobs.worker import Worker

    ran = 0
    all_ran = asyncio.Event()

    async def nothing(ctx: Any) -> None:
        nonlocal ran
        ran += 1
        if ran == args.mails:
            all_ran.set()

    async with database.engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO jobs (name) SELECT 'bench.nothing' FROM generate_series(1, :n)"),
            {"n": args.mails},
        )
    worker = Worker(database, settings, {"bench.nothing": nothing}, concurrency=args.concurrency)
    started, cpu_started = time.perf_counter(), time.process_time()
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(all_ran.wait(), args.timeout)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        await wait_for(lambda: _idle(database), seconds=30)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    print(f"queue alone: {args.mails} jobs that do nothing, {args.concurrency} claim loops")
    print(f"  jobs per second: {args.mails / seconds:8.0f}/s")
    print(f"  CPU per job (this process): {cpu / args.mails * 1000:.3f} ms")


# -- 1. throughput ---------------------------------------------------------------------------


async def throughput(database: Any, settings: Any, who: dict[str, Any], args: Any) -> None:
    from sqlalchemy import text

    from tekudasai.tasks import make_worker

    async with database.engine.begin() as conn:
        await conn.execute(
            text(INSERT_REPLIES),
            {"agent": who["agent_id"], "n": args.mails, "ids": who["ticket_ids"]},
        )
    count_file = settings.data_dir / "sink-count"
    sink = await start_sink(args.smtp_port, count_file)
    worker = make_worker(database, settings, concurrency=args.concurrency)
    started = time.perf_counter()
    cpu_started = time.process_time()
    running = asyncio.create_task(worker.run())
    dispatched_at: float | None = None
    try:

        async def dispatched() -> bool:
            nonlocal dispatched_at
            state = await queue_state(database)
            done = state.get("tickets.dispatch_event:done", 0) == args.mails
            if done and dispatched_at is None:
                dispatched_at = time.perf_counter()
            return done

        async def sent() -> bool:
            await dispatched()
            return delivered(count_file) >= args.mails

        await wait_for(sent, seconds=args.timeout)
        finished = time.perf_counter()
        cpu = time.process_time() - cpu_started
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        sink.send_signal(signal.SIGTERM)
        await sink.wait()
    state = await queue_state(database)
    seconds = finished - started
    print(f"throughput: {args.mails} replies -> {delivered(count_file)} mails delivered")
    print(f"  events dispatched: {args.mails / ((dispatched_at or finished) - started):8.0f}/s")
    print(f"  mails end to end:  {args.mails / seconds:8.0f}/s ({seconds:.1f} s)")
    print(
        f"  CPU per notification (dispatch + mail, this process): {cpu / args.mails * 1000:.2f} ms"
    )
    print(f"  queue afterwards:  {json.dumps(state, sort_keys=True)}")


async def dispatch_only(database: Any, settings: Any, who: dict[str, Any], args: Any) -> None:
    from sqlalchemy import text

    from tekudasai.tasks import make_worker
    from tekudasai.tickets.events import DISPATCH

    async with database.engine.begin() as conn:
        await conn.execute(
            text(INSERT_REPLIES),
            {"agent": who["agent_id"], "n": args.mails, "ids": who["ticket_ids"]},
        )
    worker = make_worker(database, settings, concurrency=1)
    worker.skip = frozenset(name for name in worker.tasks if name != DISPATCH)
    started, cpu_started = time.perf_counter(), time.process_time()
    ran = await worker.run_pending()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    async with database.engine.begin() as conn:
        await conn.execute(text("DELETE FROM jobs"))  # the next part counts its own
    print(f"dispatch alone: {ran} comment events, one claim loop, mails left queued")
    print(f"  events per second: {ran / seconds:8.0f}/s")
    print(f"  CPU per dispatch (this process): {cpu / ran * 1000:.2f} ms")


# -- 2. the causing request ------------------------------------------------------------------


async def request_cost(database: Any, settings: Any, who: dict[str, Any], args: Any) -> None:
    import httpx

    from tekudasai import tasks
    from tekudasai.app import create_app
    from tekudasai.jobs.worker import Worker
    from tekudasai.tickets import events

    count_file = settings.data_dir / "sink-count-2"
    sink = await start_sink(args.smtp_port, count_file)
    headers = {"Authorization": f"Bearer {who['agent_token']}"}
    ticket_ids = who["ticket_ids"]
    app = create_app(settings, database, metrics=False)
    variants = [("without handler", ()), ("with notifications", tasks.EVENT_HANDLERS)]
    modes = ["request only", "worker in the loop"]
    medians: dict[tuple[str, str], list[float]] = {}
    p99s: dict[tuple[str, str], list[float]] = {}
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000"
            ) as http,
        ):
            for round_ in range(args.rounds):
                for mode in modes:
                    # Alternate the order each round: the machine's load drifts.
                    for name, handlers in variants[:: 1 if round_ % 2 == 0 else -1]:
                        task_map = {**tasks.TASKS, events.DISPATCH: events.dispatch_task(handlers)}
                        worker = Worker(database, settings, task_map, concurrency=args.concurrency)
                        running = None
                        if mode == "worker in the loop":
                            running = asyncio.create_task(worker.run())
                        timings = []
                        try:
                            for n in range(args.requests + 20):
                                tid = ticket_ids[n % len(ticket_ids)]
                                began = time.perf_counter()
                                response = await http.post(
                                    f"/api/tickets/{tid}/comments",
                                    json={"body": f"Round {round_} reply {n}"},
                                    headers=headers,
                                )
                                if n >= 20:  # the first ones warm caches and the pool
                                    timings.append(time.perf_counter() - began)
                                assert response.status_code == 200, response.text[:300]
                            if running is None:  # drain, untimed, so the next run starts idle
                                running = asyncio.create_task(worker.run())
                            await wait_for(lambda: _idle(database), seconds=args.timeout)
                        finally:
                            if running is not None:
                                running.cancel()
                                await asyncio.gather(running, return_exceptions=True)
                        timings.sort()
                        key = (mode, name)
                        medians.setdefault(key, []).append(statistics.median(timings) * 1000)
                        p99s.setdefault(key, []).append(
                            timings[int(len(timings) * 0.99) - 1] * 1000
                        )
    finally:
        sink.send_signal(signal.SIGTERM)
        await sink.wait()
    print(
        f"request cost: POST /api/tickets/{{id}}/comments (agent reply), {args.requests} requests"
        f" x {args.rounds} rounds, best round's median and p99:"
    )
    for mode in modes:
        base = min(medians[(mode, "without handler")])
        for name, _ in variants:
            best, p99 = min(medians[(mode, name)]), min(p99s[(mode, name)])
            print(
                f"  {mode:19} {name:19} median {best:7.2f} ms  p99 {p99:7.2f} ms"
                f"  ({best / base - 1:+.1%})"
            )
    print(f"  mails delivered meanwhile: {delivered(count_file)}")


async def _idle(database: Any) -> bool:
    state = await queue_state(database)
    return not any(k.endswith((":queued", ":running")) for k in state if state[k])


# -- main ------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    from tekudasai.config import Settings
    from tekudasai.core.crypto import PiiCipher
    from tekudasai.db import migrate
    from tekudasai.db.embedded import EmbeddedPostgres
    from tekudasai.db.session import Database

    data_dir = Path(tempfile.mkdtemp(prefix="tk-notify-bench-"))
    server = EmbeddedPostgres(data_dir / "pgdata")
    server.ensure_running()
    try:
        url = server.url("tekudasai")
        with contextlib.suppress(Exception):
            import asyncpg

            conn = await asyncpg.connect(server.url("postgres"))
            await conn.execute('CREATE DATABASE "tekudasai"')
            await conn.close()
        settings = Settings(
            DATABASE_URL=url,
            TK_DATA_DIR=str(data_dir),
            BETTER_AUTH_SECRET=SECRET,
            TK_RATE_LIMITS="off",
            TK_BACKGROUND_JOBS="false",
            TK_LOG_LEVEL="WARNING",
            TK_SMTP_URL=f"smtp://127.0.0.1:{args.smtp_port}",
            TK_SUPPORT_ADDRESS="help@bench.test",
            TK_BACKUP_INTERVAL="off",
        )
        database = Database.connect(url, settings, pool_size=args.concurrency + 4)
        await migrate.upgrade(database.engine)
        who = await seed(database, PiiCipher(settings.master_secret()))
        if "queue" in args.parts:
            await queue_floor(database, settings, args)
        if "dispatch" in args.parts:
            await dispatch_only(database, settings, who, args)
        if "throughput" in args.parts:
            await throughput(database, settings, who, args)
        if "request" in args.parts:
            await request_cost(database, settings, who, args)
        await database.dispose()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="worker claim loops")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--parts", default="queue,dispatch,throughput,request")
    parser.add_argument("--smtp-port", type=int, default=0)
    parser.add_argument("--sink", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--count-file", type=Path, default=None, help=argparse.SUPPRESS)
    cli = parser.parse_args()
    if cli.sink is not None:
        smtp_sink(cli.sink, cli.count_file)
    else:
        cli.smtp_port = cli.smtp_port or free_port()
        os.environ.setdefault("TK_LOG_LEVEL", "WARNING")
        asyncio.run(run(cli))
