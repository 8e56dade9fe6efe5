"""Reports summary: `GET /api/reports/summary` over a year of tickets, timed in process.

    PYTHONPATH=src .venv/bin/python bench/reports_bench.py                      # 100k tickets
    PYTHONPATH=src .venv/bin/python bench/reports_bench.py --tickets 1000000    # the target
    PYTHONPATH=src .venv/bin/python bench/reports_bench.py --tickets 20000 --requests 5  # smoke

An embedded PostgreSQL in a temporary TK_DATA_DIR (removed afterwards) is loaded with
`seed_bulk` (tickets spread evenly over the last 365 days, statuses mixed), then one set-based
UPDATE gives them what the report reads: first responses (90 %, within 8 h), resolution times
for resolved/closed tickets, SLA states and two teams; the reports rollup is then recounted.
The endpoint is driven through httpx's ASGITransport (no network, no server) as an agent;
figures: p50 and p99 over --requests calls for the whole year, for the year of one team, and
for the last 30 days, plus the EXPLAIN ANALYZE of the figures statement (it reads the reports
rollup, reports/rollup.py). Target (issue 15): < 500 ms for a year at 1,000,000 tickets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SECRET = "bench-secret-that-is-long-enough-0123456789abcdef"

FILL = """
UPDATE tickets SET
  first_responded_at = CASE WHEN random() < 0.9
      THEN created_at + (1 + random() * 480)::int * interval '1 minute' END,
  resolved_at = CASE WHEN status IN ('resolved', 'closed')
      THEN created_at + (30 + random() * 10000)::int * interval '1 minute' END,
  sla_state = (ARRAY['met', 'met', 'breached', 'running'])[1 + floor(random() * 4)::int],
  team_id = (ARRAY[:a, :b, NULL])[1 + floor(random() * 3)::int]
"""


async def prepare(database: Any, cipher: Any, tickets: int) -> tuple[str, str]:
    from sqlalchemy import text

    from tekudasai.accounts import service as accounts
    from tekudasai.seed import seed_bulk
    from tekudasai.teams import service as teams

    async with database.sessionmaker() as db, db.begin():
        await accounts.create_user(
            db, cipher, email="admin@bench.test", name="Bench Admin", password="x" * 12,
            role="admin", email_verified=True,
        )  # fmt: skip
        agents = [
            await accounts.create_user(
                db,
                cipher,
                email=f"agent{n}@bench.test",
                name=f"Agent {n}",
                password="x" * 12,
                role="agent",
                email_verified=True,
            )
            for n in range(10)
        ]
        token, _ = await accounts.create_session(db, user_id=agents[0].id)
        ids = [a.id for a in agents]
        team_a = await teams.create_team(db, name="A", member_ids=ids[:5], assignment="manual")
        team_b = await teams.create_team(db, name="B", member_ids=ids[5:], assignment="manual")
    began = time.perf_counter()
    await seed_bulk(database, cipher, users=1000, tickets=tickets, forms=1)
    async with database.engine.begin() as conn:
        # Triggers (counts, search vector) have nothing to do with these columns; the reports
        # rollup has, and is recounted once after this bulk UPDATE (as seed_bulk does).
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(text("SET LOCAL tekudasai.skip_report_rollup = on"))
        await conn.execute(text("SET LOCAL statement_timeout = 0"))  # one bulk UPDATE
        await conn.execute(text(FILL), {"a": team_a["id"], "b": team_b["id"]})
        await conn.execute(text("SET LOCAL tekudasai.skip_report_rollup = off"))
        rebuilt = time.perf_counter()
        await conn.execute(text("SELECT tk_report_rollup_rebuild()"))
        print(f"rollup rebuilt in {time.perf_counter() - rebuilt:.1f} s")
    async with database.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("SET statement_timeout = 0"))  # a million rows take a while
        await conn.execute(text("VACUUM ANALYZE tickets"))
        await conn.execute(text("VACUUM ANALYZE report_rollup"))
        rows = (await conn.execute(text("SELECT count(*) FROM report_rollup"))).scalar()
        print(f"rollup rows: {rows:,}")
    print(f"loaded {tickets:,} tickets in {time.perf_counter() - began:.0f} s")
    return token, str(team_a["id"])


async def explain(database: Any, team: str | None) -> None:
    from sqlalchemy import text

    from tekudasai.reports import service

    today = datetime.now(UTC).date()
    period = service.Period(today - timedelta(days=364), today, team)
    sql, params = service.figures_query(period)
    async with database.engine.connect() as conn:
        rows = await conn.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql), params)
        print(f"-- the figures statement{' (one team)' if team else ''}:")
        for (line,) in rows:
            print("   ", line)


async def timed(http: Any, params: dict[str, str], headers: dict[str, str], n: int) -> None:
    timings = []
    for i in range(n + 2):
        began = time.perf_counter()
        response = await http.get("/api/reports/summary", params=params, headers=headers)
        elapsed = time.perf_counter() - began
        assert response.status_code == 200, response.text[:300]
        if i >= 2:  # the first calls warm the caches
            timings.append(elapsed * 1000)
    timings.sort()
    p99 = timings[max(0, int(len(timings) * 0.99) - 1)]
    created = response.json()["data"]["created"]
    label = ", ".join(f"{k}={v}" for k, v in params.items())
    print(
        f"  {label:45} created {created:>9,}  p50 {statistics.median(timings):8.1f} ms"
        f"  p99 {p99:8.1f} ms"
    )


async def run(args: argparse.Namespace) -> None:
    import httpx

    from tekudasai.app import create_app
    from tekudasai.config import Settings
    from tekudasai.core.crypto import PiiCipher
    from tekudasai.db import migrate
    from tekudasai.db.embedded import EmbeddedPostgres
    from tekudasai.db.session import Database

    data_dir = Path(tempfile.mkdtemp(prefix="tk-reports-bench-"))
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
            TK_BACKUP_INTERVAL="off",
        )
        database = Database.connect(url, settings, pool_size=4)
        await migrate.upgrade(database.engine)
        token, team = await prepare(database, PiiCipher(settings.master_secret()), args.tickets)
        app = create_app(settings, database, metrics=False)
        today = datetime.now(UTC).date()
        year = {"from": (today - timedelta(days=364)).isoformat(), "to": today.isoformat()}
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000"
            ) as http,
        ):
            print(f"GET /api/reports/summary, {args.requests} calls each:")
            await timed(http, year, headers, args.requests)
            await timed(http, year | {"teamId": team}, headers, args.requests)
            await timed(http, {}, headers, args.requests)  # the default: last 30 days
        if args.explain:
            await explain(database, None)
            await explain(database, team)
        await database.dispose()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--no-explain", dest="explain", action="store_false")
    os.environ.setdefault("TK_LOG_LEVEL", "WARNING")
    asyncio.run(run(parser.parse_args()))
