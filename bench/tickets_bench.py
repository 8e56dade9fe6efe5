"""Tickets benchmark: the API under wrk against the same SQL under pgbench, in one run.

    PYTHONPATH=src python bench/tickets_bench.py            # 1M tickets, 10k users (seeds once)
    PYTHONPATH=src python bench/tickets_bench.py --quick    # 50k tickets, short runs

It uses a dedicated TK_DATA_DIR (embedded PostgreSQL), seeds it once with
`tekudasai db seed` when empty, starts `tekudasai serve` on a free port, and for each endpoint
runs wrk (p50/p99/req/s) and pgbench over the very statements the endpoint sent (captured from
one in-process request), then prints the ratio API req/s / pgbench tps, deep-page costs and the
EXPLAIN plans of the list and count queries.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, text

from tekudasai.accounts import service as accounts_service
from tekudasai.app import create_app
from tekudasai.config import Settings
from tekudasai.db.embedded import EmbeddedPostgres, bin_path
from tekudasai.db.session import Database
from tekudasai.tickets import listing

SECRET = "bench-secret-that-is-long-enough-0123456789abcdef"
SEARCH_WORDS = ("printer", "zebra")  # a common seeded word (~13 % of summaries), a rare one


@dataclass
class Run:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class Planning:
    """What PostgreSQL spent per request during a wrk run (pg_stat_statements)."""

    plans: float  # statements planned per request: 0 when every plan was cached
    plan_ms: float
    exec_ms: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        TK_DATA_DIR=str(data_dir),
        BETTER_AUTH_SECRET=SECRET,
        TK_RATE_LIMITS="off",
        TK_BACKGROUND_JOBS="false",
        TK_LOG_LEVEL="WARNING",
        PYTHONPATH=str(Path(__file__).resolve().parent.parent / "src"),
    )
    return env


def tekudasai(data_dir: Path, *args: str, **kwargs: Any) -> Any:
    command = [sys.executable, "-m", "tekudasai", *args]
    return subprocess.run(command, env=env_for(data_dir), check=True, **kwargs)


# -- data ---------------------------------------------------------------------------------------


async def prepare(database: Database, data_dir: Path, users: int, tickets: int) -> None:
    async with database.engine.connect() as conn:
        have = (await conn.execute(text("SELECT count(*) FROM tickets"))).scalar() or 0
    if have < tickets:
        print(f"seeding {users} users and {tickets} tickets (once) …", flush=True)
        started = time.perf_counter()
        tekudasai(data_dir, "db", "seed", "--users", str(users), "--tickets", str(tickets))
        print(f"seeded in {time.perf_counter() - started:.0f}s")
    await give_due_times(database)
    # A fresh bulk load has no visibility map or hint bits yet; autovacuum would get there.
    async with database.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("SET statement_timeout = 0"))  # a million rows take a while
        for table in ("tickets", "ticket_logs", "ticket_counts", "users", "sessions"):
            await conn.execute(text(f"VACUUM (ANALYZE) {table}"))


async def give_due_times(database: Database) -> None:
    """The queue by due time (#15) needs tickets on an SLA clock: the open and in-progress ones
    get a policy and a due time spread over the next days, as the SLA clock would (once)."""
    async with database.engine.begin() as conn:
        if (await conn.execute(text("SELECT 1 FROM sla_policies WHERE id = 'bench'"))).first():
            return
        print("giving open tickets an SLA due time (once) …", flush=True)
        # One bulk UPDATE of every open ticket: longer than the app's statement timeout.
        await conn.execute(text("SET LOCAL statement_timeout = 0"))
        # Its report deltas would be one trigger run per ticket: recount once instead.
        await conn.execute(text("SET LOCAL tekudasai.skip_report_rollup = on"))
        await conn.execute(
            text(
                "INSERT INTO business_calendars (id, name, timezone, hours, holidays)"
                " VALUES ('bench', 'Bench', 'UTC', '{}', '[]') ON CONFLICT DO NOTHING"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO sla_policies (id, name, conditions, calendar_id,"
                " first_response_minutes, resolution_minutes)"
                " VALUES ('bench', 'Bench', '{}', 'bench', 60, 480)"
            )
        )
        await conn.execute(
            text(
                "UPDATE tickets SET sla_policy_id = 'bench', sla_state = 'running',"
                " sla_started_at = created_at,"
                " sla_resolution_due_at = now() + (id % 10000) * interval '1 minute',"
                " sla_due_at = now() + (id % 10000) * interval '1 minute'"
                " WHERE status IN ('open', 'in_progress')"
            )
        )
        await conn.execute(text("SELECT tk_report_rollup_rebuild()"))


async def deep_due_cursor(database: Database) -> str:
    """A cursor 100,000 tickets down the queue by due time (halfway, when it is shorter)."""
    async with database.engine.connect() as conn:
        due = (
            await conn.execute(text("SELECT count(*) FROM tickets WHERE sla_due_at IS NOT NULL"))
        ).scalar_one()
        row = (
            await conn.execute(
                text(
                    "SELECT sla_due_at, id FROM tickets WHERE sla_due_at IS NOT NULL"
                    " ORDER BY sla_due_at, id OFFSET :n LIMIT 1"
                ),
                {"n": min(100_000, due // 2)},
            )
        ).one()
    return listing.encode_sort_cursor("dueAt", listing.SortCursor(0, row[0], row[1]))


async def people(database: Database) -> dict[str, Any]:
    """A customer with the most tickets, an agent, bearer tokens, and ids to read."""
    async with database.sessionmaker() as db, db.begin():
        reporter_id = (
            await db.execute(
                text(
                    "SELECT key FROM ticket_counts WHERE scope = 'reporter' GROUP BY key"
                    " ORDER BY sum(n) DESC LIMIT 1"
                )
            )
        ).scalar_one()
        agent_id = (
            await db.execute(text("SELECT id FROM users WHERE role = 'agent' LIMIT 1"))
        ).scalar_one()
        ticket = (
            await db.execute(
                text(
                    "SELECT id, form_id FROM tickets WHERE reporter_id = :r ORDER BY id DESC"
                    " LIMIT 1"
                ),
                {"r": reporter_id},
            )
        ).one()
        max_id = (await db.execute(text("SELECT max(id) FROM tickets"))).scalar_one()
        reporter_token, _ = await accounts_service.create_session(db, user_id=reporter_id)
        agent_token, _ = await accounts_service.create_session(db, user_id=agent_id)
    return {
        "reporter_id": reporter_id,
        "reporter": reporter_token,
        "agent": agent_token,
        "ticket_id": ticket.id,
        "form_id": ticket.form_id,
        "max_id": max_id,
    }


# -- what each endpoint sends to the database ------------------------------------------------------


def render(statement: str, params: Any) -> str:
    """asyncpg's $n placeholders replaced by SQL literals (for a pgbench script)."""
    values = list(params or ())
    for index in range(len(values), 0, -1):
        value = literal(values[index - 1])
        statement = re.sub(rf"\${index}(?!\d)", lambda _m, v=value: v, statement)
    return hide_colons(" ".join(statement.split()))


def hide_colons(statement: str) -> str:
    """pgbench reads ':name' as a variable, even inside a string literal ('HH24:MI'): such
    literals become E'' strings with the colon as \\x3a, the same constant to PostgreSQL."""

    def escape(match: re.Match[str]) -> str:
        body = match.group(0)
        if ":" not in body:
            return body
        return "E" + body.replace("\\", "\\\\").replace(":", "\\x3a")

    return re.sub(r"'(?:[^']|'')*'", escape, statement)


def literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, bytes):
        return f"'\\x{value.hex()}'::bytea"
    if isinstance(value, dt.datetime):
        return f"'{value.isoformat()}'"
    if isinstance(value, list):  # after the bind processors: an array (JSON arrives as text)
        return "ARRAY[" + ", ".join(literal(v) for v in value) + "]" if value else "'{}'"
    if isinstance(value, dict):
        value = json.dumps(value)
    return "'" + str(value).replace("'", "''") + "'"


async def capture(app: Any, database: Database, method: str, path: str, **kw: Any) -> list[str]:
    """The statements one request runs in steady state (a first request fills the process's
    caches, such as the rendered forms), with their parameters inlined."""
    seen: list[str] = []

    def record(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: Any
    ) -> None:
        if not statement.strip().lower().startswith(("select 1", ";")):
            seen.append(render(statement, params))

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        warm = await http.request(method, path, **kw)
        assert warm.status_code == 200, warm.text[:300]

    from tekudasai.db import raw  # here: request_overhead --compare imports this module

    def record_raw(statement: str, values: list[Any], seconds: float) -> None:
        seen.append(render(statement, values))

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    observer, raw.observer = raw.observer, record_raw  # statements sent straight to asyncpg
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            response = await http.request(method, path, **kw)
            assert response.status_code == 200, response.text[:300]
    finally:
        raw.observer = observer
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)
    return seen


# -- load ----------------------------------------------------------------------------------------


def wrk_script(directory: Path, name: str, method: str, token: str, body: str | None) -> Path:
    lines = [
        f'wrk.method = "{method}"',
        f'wrk.headers["Authorization"] = "Bearer {token}"',
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    if body is not None:
        lines.append(f"wrk.body = [[{body}]]")
    path = directory / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def wrk(name: str, url: str, script: Path, seconds: int, connections: int) -> Run:
    out = subprocess.run(
        [
            "wrk",
            f"-c{connections}",
            "-t2",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    return Run(name, rps, _wrk_ms(out, "50%"), _wrk_ms(out, "99%"), errors)


def _wrk_ms(out: str, label: str) -> float:
    match = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)\b", out)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def pgbench(server: EmbeddedPostgres, statements: list[str], seconds: int, clients: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write("BEGIN;\n" + "".join(s.rstrip(";") + ";\n" for s in statements) + "COMMIT;\n")
        script = handle.name
    os.chmod(script, 0o644)
    out = subprocess.run(
        [
            str(bin_path("pgbench")),
            "-n",
            "-M",
            "prepared",
            f"-c{clients}",
            "-j2",
            f"-T{seconds}",
            "-f",
            script,
            "-h",
            str(server.socket_dir),
            "-U",
            "postgres",
            "tekudasai",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script)
    return float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]


def psql(server: EmbeddedPostgres, *statements: str) -> str:
    command = [str(bin_path("psql")), "-h", str(server.socket_dir), "-U", "postgres", "-At"]
    for statement in statements:
        command += ["-c", statement]  # each on its own: ALTER SYSTEM refuses a transaction
    done = subprocess.run([*command, "tekudasai"], capture_output=True, text=True, check=True)
    return done.stdout


def track_planning(server: EmbeddedPostgres) -> None:
    """Planning counted per statement: a statement planned on every call shows as plans/req."""
    psql(
        server,
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
        "ALTER SYSTEM SET pg_stat_statements.track_planning = on",
        "SELECT pg_reload_conf()",
    )


def planning(server: EmbeddedPostgres, requests: float) -> Planning:
    row = psql(
        server,
        "SELECT sum(plans), sum(total_plan_time), sum(total_exec_time) FROM pg_stat_statements"
        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    plans, plan_ms, exec_ms = (float(v or 0) for v in row.strip().split("|"))
    n = max(requests, 1)
    return Planning(plans / n, plan_ms / n, exec_ms / n)


async def explain(database: Database, statement: Any) -> str:
    sql = str(
        statement.compile(dialect=database.engine.dialect, compile_kwargs={"literal_binds": True})
    )
    noise = ("Index Searches", "Cache ", "Hits:", "Heap Blocks", "Planning", "Sort Method")
    async with database.engine.connect() as conn:
        rows = await conn.execute(text("EXPLAIN (ANALYZE, COSTS OFF, BUFFERS OFF) " + sql))
        return "\n".join("    " + r[0] for r in rows if not r[0].strip().startswith(noise))


# -- the run -------------------------------------------------------------------------------------


async def setup(args: argparse.Namespace, server: EmbeddedPostgres) -> dict[str, Any]:
    """Seed (once), sign two people in, and capture the SQL of every endpoint."""
    url = server.url("tekudasai")
    settings = Settings(DATABASE_URL=url, TK_DATA_DIR=str(args.data_dir), BETTER_AUTH_SECRET=SECRET)
    database = Database.connect(url, settings, pool_size=2)
    await prepare(database, args.data_dir, args.users, args.tickets)
    who = await people(database)
    tid, rep, agt = who["ticket_id"], who["reporter"], who["agent"]
    # Page 10,000 of 10 (in --quick, halfway down).
    deep_cursor = listing.encode_cursor(max(who["max_id"] - 100_000, who["max_id"] // 2))
    due_cursor = await deep_due_cursor(database)
    new_ticket = json.dumps(
        {
            "formId": who["form_id"],
            "summary": "Benchmark printer on fire",
            "formResponse": {"category": "hardware", "description": "It smokes"},
        }
    )
    endpoints: list[tuple[str, str, str, str, str | None]] = [
        ("my list", "GET", "/api/tickets/my", rep, None),
        ("my ticket", "GET", f"/api/tickets/my/{tid}", rep, None),
        *(
            (f"agent search={w}", "GET", f"/api/tickets?search={w}", agt, None)
            for w in SEARCH_WORDS
        ),
        ("agent page 1", "GET", "/api/tickets?cursor=", agt, None),
        ("agent cursor page 10000", "GET", f"/api/tickets?cursor={deep_cursor}", agt, None),
        ("agent offset page 10000", "GET", "/api/tickets?page=10000", agt, None),
        # The queue by due time (#15): page 1 and a cursor page 100,000 tickets down.
        ("agent by due page 1", "GET", "/api/tickets?sort=dueAt&cursor=", agt, None),
        (
            "agent by due cursor deep",
            "GET",
            f"/api/tickets?sort=dueAt&cursor={due_cursor}",
            agt,
            None,
        ),
        ("agent by priority page 1", "GET", "/api/tickets?sort=priority&cursor=", agt, None),
        # Last: its inserts fill the trigram index's pending list, which every search then scans.
        ("create", "POST", "/api/tickets/my", rep, new_ticket),
    ]
    if args.only:
        wanted = args.only.split(",")
        endpoints = [e for e in endpoints if any(w in e[0] for w in wanted)]
    app = create_app(settings, database)
    sql: dict[str, list[str]] = {}
    async with app.router.lifespan_context(app):
        for name, method, path, token, body in endpoints:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            sql[name] = await capture(app, database, method, path, headers=headers, content=body)
    plans = await explain_all(database, deep_cursor, due_cursor)
    await database.dispose()
    return {"endpoints": endpoints, "sql": sql, "plans": plans}


async def explain_all(
    database: Database, deep_cursor: str, due_cursor: str
) -> list[tuple[str, str]]:
    every = listing.TicketFilter()
    by_due = listing.TicketFilter(sort="dueAt")
    statements = [
        ("total, all tickets (ticket_counts)", listing.count_query(every)),
        ("total, status=open", listing.count_query(listing.TicketFilter(status="open"))),
        ("agent page 1", listing.list_query(every, page=1, limit=10, cursor="")),
        (
            "agent cursor page 10000",
            listing.list_query(every, page=1, limit=10, cursor=deep_cursor),
        ),
    ]
    statements += [
        ("agent by due page 1", listing.list_query(by_due, page=1, limit=10, cursor="")),
        (
            "agent by due cursor deep",
            listing.list_query(by_due, page=1, limit=10, cursor=due_cursor),
        ),
    ]
    for word in SEARCH_WORDS:
        spec = listing.TicketFilter(search=word)
        statements.append((f"search={word} page 1", listing.list_query(spec, page=1, limit=10)))
        statements.append((f"search={word} total (capped)", listing.count_query(spec)))
    return [(title, await explain(database, statement)) for title, statement in statements]


def serve_and_measure(
    args: argparse.Namespace, server: EmbeddedPostgres, prepared: dict[str, Any]
) -> list[tuple[Run, float, int, Planning]]:
    port = free_port()
    command = [sys.executable, "-m", "tekudasai", "serve", "--port", str(port)]
    serve = subprocess.Popen(
        [*command, "--workers", str(args.workers)],
        env=env_for(args.data_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    results: list[tuple[Run, float, int, Planning]] = []
    try:
        for _ in range(150):
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        scripts = Path(tempfile.mkdtemp(prefix="tk-bench-"))
        for name, method, path, token, body in prepared["endpoints"]:
            statements = prepared["sql"][name]
            script = wrk_script(scripts, re.sub(r"\W+", "_", name), method, token, body)
            wrk(name, base + path, script, 2, args.connections)  # warm-up
            psql(server, "SELECT pg_stat_statements_reset()")
            run = wrk(name, base + path, script, args.seconds, args.connections)
            spent = planning(server, run.rps * args.seconds)
            tps = pgbench(server, statements, args.seconds, args.connections)
            results.append((run, tps, len(statements), spent))
            print(f"  {name}: {run.rps:.0f} req/s, pgbench {tps:.0f} tps", flush=True)
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=60)
    return results


def report(
    args: argparse.Namespace, results: list[tuple[Run, float, int, Planning]], plans: Any
) -> None:
    print()
    print(
        f"tickets={args.tickets} users={args.users}; wrk -c{args.connections} -d{args.seconds}s;"
        f" serve --workers {args.workers}; pgbench -c{args.connections} -M prepared"
    )
    header = f"{'endpoint':<26}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'non2xx':>8}"
    print(header + f"{'queries':>9}{'pgbench tps':>13}{'ratio':>7}{'plans':>7}{'plan/exec ms':>14}")
    for run, tps, queries, spent in results:
        print(
            f"{run.name:<26}{run.rps:>8.0f}{run.p50_ms:>9.1f}{run.p99_ms:>9.1f}{run.errors:>8}"
            f"{queries:>9}{tps:>13.0f}{run.rps / tps:>7.2f}{spent.plans:>7.2f}"
            f"{spent.plan_ms:>7.2f}/{spent.exec_ms:.2f}"
        )
    print(
        "plans = statements PostgreSQL planned per request during the wrk run (0: every plan"
        " cached);\nplan/exec ms = its planning and execution time per request"
        " (pg_stat_statements)."
    )
    by_name = {run.name: run for run, _, _, _ in results}
    first, deep = by_name.get("agent page 1"), by_name.get("agent cursor page 10000")
    if first and deep:
        print(
            f"\ncursor page 10000 vs page 1: p50 {deep.p50_ms / first.p50_ms:.2f}x,"
            f" throughput {first.rps / deep.rps:.2f}x"
        )
    print("\nEXPLAIN ANALYZE at this size (the statements the endpoints run):")
    for title, plan in plans:
        print(f"  -- {title}")
        print(plan)


def main(args: argparse.Namespace) -> None:
    args.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(env_for(args.data_dir))
    server = EmbeddedPostgres(args.data_dir / "pgdata")
    server.ensure_running()
    try:
        tekudasai(args.data_dir, "db", "migrate", stdout=subprocess.DEVNULL)
        track_planning(server)
        prepared = asyncio.run(setup(args, server))
        results = serve_and_measure(args, server, prepared)
        report(args, results, prepared["plans"])
    finally:
        if not args.keep_running:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, short runs")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seconds", type=int, default=None)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--only", default=None, help="endpoints whose name contains one of a,b")
    parser.add_argument("--keep-running", action="store_true", help="leave PostgreSQL running")
    args = parser.parse_args()
    args.users, args.tickets = (1_000, 50_000) if args.quick else (10_000, 1_000_000)
    args.seconds = args.seconds or (3 if args.quick else 10)
    default_dir = "tk-tickets-bench-quick" if args.quick else "tk-tickets-bench"
    args.data_dir = Path(args.data_dir or Path(tempfile.gettempdir()) / default_dir)
    main(args)
