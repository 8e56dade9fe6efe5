"""Ticket creation with an SLA policy against creation without: ms/request, round trips, ratio.

    PYTHONPATH=src python bench/create_rules_bench.py [--requests 300] [--rounds 3]

In process, as bench/request_overhead.py: httpx's ASGITransport drives the app (one client, no
network), POST /api/tickets/my against a dedicated embedded PostgreSQL (TK_DATA_DIR
tk-create-rules under the temp dir, seeded once with a small data set). Phases alternate in
one process, so both see the same machine state: (a) no SLA policy, (b) one SLA policy that
matches every ticket, on a business-hours calendar with a country's holidays (the due-time
computation is real work). Ratios are (b) over (a) from the same run. The issue's target:
within 20 % (that figure also counts 20 automations: bench/automations benchmarks measure them).
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
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SECRET = "bench-secret-that-is-long-enough-0123456789abcdef"
CALENDAR = {
    "name": "Berlin office",
    "timezone": "Europe/Berlin",
    "hours": {
        d: [["09:00", "12:30"], ["13:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")
    },
    "holidays": ["2026-12-24", "2026-12-31"],
    "holidayCountry": "DE",
}


async def measure(data_dir: Path, url: str, requests: int, rounds: int) -> dict[str, Any]:
    import httpx
    from sqlalchemy import text

    sys.path.insert(0, str(HERE))
    from request_overhead import _count_writes  # type: ignore[import-not-found]
    from tickets_bench import people  # type: ignore[import-not-found]

    from tekudasai.app import create_app
    from tekudasai.config import Settings
    from tekudasai.db.session import Database

    writes = _count_writes()
    settings = Settings(
        DATABASE_URL=url,
        TK_DATA_DIR=str(data_dir),
        BETTER_AUTH_SECRET=SECRET,
        TK_RATE_LIMITS="off",
        TK_BACKGROUND_JOBS="false",
        TK_LOG_LEVEL="WARNING",
    )
    database = Database.connect(url, settings, pool_size=2)
    async with database.sessionmaker() as db, db.begin():
        # The seed makes no admin: an agent is one for this run (it manages the policies);
        # one left over from an interrupted run is an agent again.
        await db.execute(text("UPDATE users SET role = 'agent' WHERE role = 'admin'"))
    who = await people(database)
    async with database.sessionmaker() as db, db.begin():
        admin_id = await db.scalar(
            text("SELECT id FROM users WHERE role = 'agent' ORDER BY id LIMIT 1")
        )
        await db.execute(text("UPDATE users SET role = 'admin' WHERE id = :id"), {"id": admin_id})
        await db.execute(text("DELETE FROM sla_policies"))
        await db.execute(text("DELETE FROM business_calendars"))
    from tekudasai.accounts import service as accounts_service

    async with database.sessionmaker() as db, db.begin():
        admin_token, _ = await accounts_service.create_session(db, user_id=admin_id)
    adm = {"Authorization": f"Bearer {admin_token}"}
    body = json.dumps(
        {
            "formId": who["form_id"],
            "summary": "Printer on fire",
            "formResponse": {"category": "hardware", "description": "It smokes"},
        }
    )
    rep = {"Authorization": f"Bearer {who['reporter']}", "Content-Type": "application/json"}
    app = create_app(settings, database)
    timings: dict[str, list[float]] = {"none": [], "sla": []}
    trips: dict[str, list[float]] = {"none": [], "sla": []}
    with_sla = 0
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http,
    ):
        calendar = await http.post("/api/calendars", json=CALENDAR, headers=adm)
        assert calendar.status_code == 200, calendar.text
        calendar_id = calendar.json()["data"]["id"]
        for _ in range(rounds):
            for phase in ("none", "sla"):
                policy_id = None
                if phase == "sla":
                    policy = {
                        "name": "Everything",
                        "position": 0,
                        "conditions": {},
                        "calendarId": calendar_id,
                        "firstResponseMinutes": 240,
                        "resolutionMinutes": 2400,
                    }
                    made = await http.post("/api/sla-policies", json=policy, headers=adm)
                    assert made.status_code == 200, made.text
                    policy_id = made.json()["data"]["id"]
                for _ in range(20):  # warm: statement caches, the policy cache
                    response = await http.post("/api/tickets/my", headers=rep, content=body)
                    assert response.status_code == 200, response.text[:300]
                writes[0] = 0
                for _ in range(requests):
                    started = time.perf_counter()
                    await http.post("/api/tickets/my", headers=rep, content=body)
                    timings[phase].append(time.perf_counter() - started)
                trips[phase].append(writes[0] / requests)
                if policy_id is not None:
                    async with database.sessionmaker() as db:
                        with_sla += await db.scalar(
                            text("SELECT count(*) FROM tickets WHERE sla_policy_id = :p"),
                            {"p": policy_id},
                        )
                    await http.delete(f"/api/sla-policies/{policy_id}", headers=adm)
    async with database.sessionmaker() as db, db.begin():
        await db.execute(text("UPDATE users SET role = 'agent' WHERE id = :id"), {"id": admin_id})
    await database.dispose()
    return {
        phase: {
            "ms": statistics.median(values) * 1000,
            "p90_ms": statistics.quantiles(values, n=10)[-1] * 1000,
            "round_trips": statistics.fmean(trips[phase]),
        }
        for phase, values in timings.items()
    } | {"tickets_with_sla": with_sla}


def main(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    from tickets_bench import env_for, prepare, tekudasai  # type: ignore[import-not-found]

    from tekudasai.config import Settings
    from tekudasai.db.embedded import EmbeddedPostgres
    from tekudasai.db.session import Database

    args.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(env_for(args.data_dir))
    server = EmbeddedPostgres(args.data_dir / "pgdata")
    server.ensure_running()
    try:
        tekudasai(args.data_dir, "db", "migrate", stdout=subprocess.DEVNULL)
        url = server.url("tekudasai")

        async def seed() -> None:
            settings = Settings(
                DATABASE_URL=url, TK_DATA_DIR=str(args.data_dir), BETTER_AUTH_SECRET=SECRET
            )
            database = Database.connect(url, settings, pool_size=1)
            await prepare(database, args.data_dir, 50, 1_000)
            await database.dispose()

        asyncio.run(seed())
        result = asyncio.run(measure(args.data_dir, url, args.requests, args.rounds))
    finally:
        server.stop()
    base = result["none"]
    print(f"{'POST /api/tickets/my':28} {'median ms':>10} {'p90 ms':>8} {'rt':>5} {'ratio':>6}")
    for phase, label in (("none", "(a) no SLA policy"), ("sla", "(b) one SLA policy")):
        row = result[phase]
        print(
            f"{label:28} {row['ms']:10.2f} {row['p90_ms']:8.2f} {row['round_trips']:5.1f}"
            f" {row['ms'] / base['ms']:6.2f}"
        )
    print(f"tickets given an SLA: {result['tickets_with_sla']}")
    print("rt = socket writes (round trips) per request; ratio = median over (a)'s median.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "tk-create-rules"
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    main(parser.parse_args())
