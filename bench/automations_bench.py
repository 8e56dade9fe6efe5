"""Ticket creation with automations and an SLA policy against creation with neither.

    PYTHONPATH=src python bench/automations_bench.py                  # defaults
    PYTHONPATH=src python bench/automations_bench.py --requests 50 --rounds 1   # a quick check

In process, like bench/request_overhead.py: httpx's ASGITransport drives the app with one
client against an embedded PostgreSQL in --data-dir (migrated and seeded once). Variants,
measured in the same run and alternated round by round so drift hits them alike:
- `none`: no automation (the reactors are installed as always);
- `20 no match`: 20 enabled ticket.created automations whose conditions do not match (summary,
  priority, tags, answers, channel; some also on reporter.email, behind a condition that fails
  first so nothing is decrypted) — the common case;
- `20, 1 tags`: the same with one of them matching and adding a tag (an action runs);
- `policy`: one SLA policy matching every ticket, on a Berlin business-hours calendar with
  Germany's public holidays (the clock computes both due times and queues its timer);
- `policy + 20`, `policy + 20, 1 tags`: both together — the issue's case.
Printed: median ms per request, round trips (socket writes) and statements per request, and
each variant's ratio against `none`. The target (#15): `policy + 20` within 20 % of none.

    PYTHONPATH=src python bench/automations_bench.py --http 10    # throughput, as #15 words it

With --http: the same variants through `serve --workers 2` under wrk (-t2 -c32), req/s and
p99 per variant, the medians of --rounds alternated rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SECRET = "bench-secret-that-is-long-enough-0123456789abcdef"
ELEMENTS = [
    {"id": "e1", "type": "textarea", "name": "description", "label": "What?", "required": True}
]


def _count_writes() -> list[int]:
    """Counts writes to every socket transport: in process, that is the database traffic."""
    import asyncio.selector_events as selector_events

    counter = [0]
    original = selector_events._SelectorSocketTransport.write

    def write(self: Any, data: Any) -> None:
        counter[0] += 1
        original(self, data)

    selector_events._SelectorSocketTransport.write = write  # type: ignore[method-assign]
    return counter


def rules(matching: bool) -> list[dict[str, Any]]:
    """Twenty ticket.created rules; none matches a bench ticket unless `matching` (the last)."""
    misses: list[list[dict[str, Any]]] = [
        [{"field": "summary", "op": "contains", "value": "zebra"}],
        [{"field": "priority", "op": "eq", "value": "urgent"}],
        [{"field": "tags", "op": "in", "value": ["vip", "legal"]}],
        [{"field": "answer.description", "op": "contains", "value": "invoice"}],
        [{"field": "channel", "op": "eq", "value": "email"}],
        [
            {"field": "status", "op": "neq", "value": "open"},
            {"field": "reporter.email", "op": "contains", "value": "@example.com"},
        ],
        [{"field": "teamId", "op": "filled", "value": True}],
    ]
    out = []
    for n in range(20):
        conditions = misses[n % len(misses)]
        actions: list[dict[str, Any]] = [{"type": "set_priority", "priority": "high"}]
        if matching and n == 19:
            conditions = [{"field": "summary", "op": "contains", "value": "printer"}]
            actions = [{"type": "add_tags", "tags": ["printer"]}]
        out.append(
            {
                "name": f"Rule {n}",
                "event": "ticket.created",
                "position": n,
                "conditions": conditions,
                "actions": actions,
            }
        )
    return out


CALENDAR = {
    "name": "Berlin office",
    "timezone": "Europe/Berlin",
    "hours": {
        d: [["09:00", "12:30"], ["13:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")
    },
    "holidays": ["2026-12-24", "2026-12-31"],
    "holidayCountry": "DE",
}


async def set_rules(database: Any, values: list[dict[str, Any]], policy: bool) -> None:
    from sqlalchemy import text

    from tekudasai.automations import service
    from tekudasai.sla import calendars, policies

    async with database.sessionmaker() as db, db.begin():
        await db.execute(text("DELETE FROM automations"))
        await db.execute(text("DELETE FROM sla_policies"))
        await db.execute(text("DELETE FROM business_calendars"))
        await db.execute(text("UPDATE automation_generation SET value = value + 1"))
        for value in values:
            await service.create_automation(db, value)
        if policy:
            calendar = await calendars.create_calendar(
                db,
                name=CALENDAR["name"],
                timezone=CALENDAR["timezone"],
                hours=CALENDAR["hours"],
                holidays=CALENDAR["holidays"],
                holiday_country=CALENDAR["holidayCountry"],
            )
            await policies.create_policy(
                db,
                {
                    "name": "Everything",
                    "position": 0,
                    "conditions": {},
                    "calendarId": calendar.id,
                    "firstResponseMinutes": 60,
                    "resolutionMinutes": 480,
                },
            )
    from tekudasai.automations import engine

    engine.invalidate()


async def measure(data_dir: Path, requests: int, rounds: int, http_seconds: int = 0) -> None:
    import httpx
    from sqlalchemy import event, text

    from tekudasai.accounts import service as accounts
    from tekudasai.app import create_app
    from tekudasai.config import Settings
    from tekudasai.core.crypto import PiiCipher
    from tekudasai.db import migrate
    from tekudasai.db.embedded import EmbeddedPostgres
    from tekudasai.db.session import Database
    from tekudasai.forms import service as forms

    server = EmbeddedPostgres(data_dir / "pgdata")
    server.ensure_running()
    url = server.url("postgres")
    settings = Settings(
        DATABASE_URL=url,
        TK_DATA_DIR=str(data_dir),
        BETTER_AUTH_SECRET=SECRET,
        TK_RATE_LIMITS="off",
        TK_BACKGROUND_JOBS="false",
        TK_LOG_LEVEL="WARNING",
    )
    database = Database.connect(url, settings, pool_size=2)
    await migrate.upgrade(database.engine)
    cipher = PiiCipher(settings.master_secret())
    async with database.sessionmaker() as db, db.begin():
        stamp = time.time_ns()
        admin = await accounts.create_user(
            db,
            cipher,
            email=f"admin{stamp}@bench.test",
            name="Admin",
            password="bench-pass-1",
            role="admin",
            email_verified=True,
        )
        reporter = await accounts.create_user(
            db,
            cipher,
            email=f"user{stamp}@bench.test",
            name="User",
            password="bench-pass-1",
            role="user",
            email_verified=True,
        )
        form = await forms.create_form(
            db,
            creator_id=admin.id,
            name=f"Bench {stamp}",
            description="",
            disabled=False,
            elements=ELEMENTS,
        )
        token, _ = await accounts.create_session(db, user_id=reporter.id)

    writes = _count_writes()
    statements = [0]

    def count(*_: Any) -> None:
        statements[0] += 1

    event.listen(database.engine.sync_engine, "before_cursor_execute", count)
    body = json.dumps(
        {
            "formId": form["id"],
            "summary": "Overhead printer on fire",
            "formResponse": {"description": "It smokes"},
        }
    )
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    variants = {
        "none": ([], False),
        "20 no match": (rules(False), False),
        "20, 1 tags": (rules(True), False),
        "policy": ([], True),
        "policy + 20": (rules(False), True),
        "policy + 20, 1 tags": (rules(True), True),
    }
    if http_seconds:
        await measure_http(database, url, data_dir, variants, token, body, http_seconds, rounds)
        await database.dispose()
        server.stop()
        return
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    app = create_app(settings, database)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http,
    ):
        from tekudasai.db import raw

        raw.observer = lambda *_: count()
        for _ in range(rounds):
            for name, (values, policy) in variants.items():
                await set_rules(database, values, policy)
                for _ in range(20):  # warm caches, the pool and the rules' cache
                    response = await http.post("/api/tickets/my", headers=headers, content=body)
                    assert response.status_code == 200, response.text[:300]
                writes[0] = statements[0] = 0
                timings = []
                for _ in range(requests):
                    started = time.perf_counter()
                    await http.post("/api/tickets/my", headers=headers, content=body)
                    timings.append(time.perf_counter() - started)
                results[name].append(
                    {
                        "ms": statistics.median(timings) * 1000,
                        "round_trips": writes[0] / requests,
                        "statements": statements[0] / requests,
                    }
                )
        async with database.engine.begin() as conn:
            await conn.execute(text("DELETE FROM automations"))
            await conn.execute(text("DELETE FROM sla_policies"))
    await database.dispose()
    server.stop()

    base = min(r["ms"] for r in results["none"])
    print(f"{'variant':20} {'ms':>8} {'rt':>5} {'sql':>5} {'ratio':>6}")
    for name, runs in results.items():
        ms = min(r["ms"] for r in runs)  # best median over the rounds: least noise
        print(
            f"{name:20} {ms:8.2f} {runs[0]['round_trips']:5.1f} {runs[0]['statements']:5.1f}"
            f" {ms / base:6.2f}"
        )
    print("ms = best of the rounds' median ms/request (POST /api/tickets/my, in process);")
    print("rt = socket writes (round trips) per request; sql = statements per request;")
    print("ratio = against `none` in this run.")


async def measure_http(
    database: Any,
    url: str,
    data_dir: Path,
    variants: dict[str, tuple[list[dict[str, Any]], bool]],
    token: str,
    body: str,
    seconds: int,
    rounds: int,
) -> None:
    """Throughput, as the issue words its target: `serve --workers 2` under wrk -t2 -c32,
    variants alternated round by round; each gets a warm-up first (its rules and policy are
    read again by the workers: the automations' generation and the policies' fingerprint)."""
    import os
    import signal
    import subprocess

    from tickets_bench import env_for, free_port, wrk, wrk_script

    port = free_port()
    env = {**env_for(data_dir), "DATABASE_URL": url}
    # Blocking calls are fine here: this loop has nothing else to run while it waits.
    serve = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "tekudasai", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    import httpx

    try:
        for _ in range(300):
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1)  # noqa: ASYNC210
                if health.is_success:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        script = wrk_script(data_dir, "create", "POST", token, body)
        target = f"http://127.0.0.1:{port}/api/tickets/my"
        runs: dict[str, list[Any]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, (values, policy) in variants.items():
                await set_rules(database, values, policy)
                await asyncio.sleep(1.5)  # past the automations' once-a-second recheck
                wrk(name, target, script, 3, 32)  # warm-up
                run = wrk(name, target, script, seconds, 32)
                assert run.errors == 0, run
                runs[name].append(run)
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(30)
    base = statistics.median(r.rps for r in runs["none"])
    print(f"{'variant':20} {'req/s':>8} {'p99 ms':>7} {'vs none':>8}")
    for name, measured in runs.items():
        rps = statistics.median(r.rps for r in measured)
        p99 = statistics.median(r.p99_ms for r in measured)
        print(f"{name:20} {rps:8.0f} {p99:7.1f} {rps / base:8.2f}")
    print(f"median of {rounds} alternated round(s) of {seconds} s each; `vs none` = the")
    print("variant's throughput over none's (#15: `policy + 20` at 0.80 or more).")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "tk-automations-bench"
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--http",
        type=int,
        default=0,
        metavar="SECONDS",
        help="throughput instead: serve --workers 2 under wrk -c32 for SECONDS per variant",
    )
    cli = parser.parse_args()
    cli.data_dir.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE))
    asyncio.run(measure(cli.data_dir, cli.requests, cli.rounds, cli.http))
