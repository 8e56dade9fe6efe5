"""Per-request cost in process: ms/request and database round trips per request, per endpoint.

    PYTHONPATH=src python bench/request_overhead.py                       # this tree
    PYTHONPATH=src python bench/request_overhead.py --compare /work/main/src   # vs another tree

No network and no server: httpx's ASGITransport drives the app with one client, so the
figures are the app's own overhead plus its database round trips. A dedicated TK_DATA_DIR
(embedded PostgreSQL) is seeded once with a small data set. With --compare, each tree is
measured in its own child process, alternating rounds, against the same database.
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
ROOT = HERE.parent
SECRET = "bench-secret-that-is-long-enough-0123456789abcdef"


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


async def measure(data_dir: Path, url: str, requests: int) -> dict[str, Any]:
    import httpx
    from sqlalchemy import event

    sys.path.insert(0, str(HERE))
    from sqlalchemy import text
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
    who = await people(database)
    async with database.engine.connect() as conn:
        # Earlier runs' inserted tickets: flush the GIN pending lists, refresh statistics.
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM (ANALYZE) tickets"))
    statements = [0]

    def count(*_: Any) -> None:
        statements[0] += 1

    event.listen(database.engine.sync_engine, "before_cursor_execute", count)

    def count_raw(statement: str, values: Any, seconds: float) -> None:  # sent to asyncpg
        count()

    body = json.dumps(
        {
            "formId": who["form_id"],
            "summary": "Overhead printer on fire",
            "formResponse": {"category": "hardware", "description": "It smokes"},
        }
    )
    rep = {"Authorization": f"Bearer {who['reporter']}", "Content-Type": "application/json"}
    agt = {"Authorization": f"Bearer {who['agent']}"}
    token_endpoints = []
    try:
        from tekudasai.accounts import tokens as personal_tokens
    except ImportError:  # --compare with a tree from before personal access tokens
        pass
    else:
        async with database.sessionmaker() as db, db.begin():
            # Each run mints one: revoke the earlier runs' (a user may hold at most 50).
            for earlier in await personal_tokens.list_tokens(db, user_id=who["reporter_id"]):
                await personal_tokens.revoke_token(db, token_id=earlier.id)
            _, raw_token = await personal_tokens.create_token(
                db,
                user_id=who["reporter_id"],
                name="bench",
                scopes=["tickets:read"],
                expires_in_days=None,
            )
        # The same read as below with a personal access token instead of a session.
        tok = {"Authorization": f"Bearer {raw_token}"}
        path = f"/api/tickets/my/{who['ticket_id']}"
        token_endpoints = [("GET /api/tickets/my/{id} (token)", "GET", path, tok, None)]
    endpoints = [
        ("GET /api/health", "GET", "/api/health", {}, None),
        ("GET /api/tickets/my", "GET", "/api/tickets/my", rep, None),
        ("GET /api/tickets/my/{id}", "GET", f"/api/tickets/my/{who['ticket_id']}", rep, None),
        *token_endpoints,
        ("GET /api/v1/tickets/my", "GET", "/api/v1/tickets/my", rep, None),
        ("GET /api/tickets?search=zebra", "GET", "/api/tickets?search=zebra", agt, None),
        (
            "GET /api/tickets?sort=dueAt (queue)",
            "GET",
            "/api/tickets?sort=dueAt&cursor=",
            agt,
            None,
        ),
        # Last: its inserts would otherwise grow the trigram index's pending list under search.
        ("POST /api/tickets/my", "POST", "/api/tickets/my", rep, body),
    ]
    only = os.environ.get("TK_BENCH_ONLY")
    endpoints = [e for e in endpoints if not only or only in e[0]]
    app = create_app(settings, database)
    results: dict[str, Any] = {}
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http,
    ):
        try:
            from tekudasai.db import raw
        except ImportError:  # --compare with a tree from before db/raw.py
            pass
        else:
            raw.observer = count_raw  # after start-up, which sets the metrics' observer
        for name, method, path, headers, content in endpoints:
            for _ in range(20):  # warm the statement caches and the pool
                response = await http.request(method, path, headers=headers, content=content)
                assert response.status_code == 200, (name, response.text[:300])
            writes[0] = statements[0] = 0
            timings = []
            cpu_started = time.process_time()
            for _ in range(requests):
                started = time.perf_counter()
                await http.request(method, path, headers=headers, content=content)
                timings.append(time.perf_counter() - started)
            results[name] = {
                # This process's CPU per request (the app and the client, not the database's).
                "cpu_ms": (time.process_time() - cpu_started) / requests * 1000,
                "ms": statistics.median(timings) * 1000,
                "mean_ms": statistics.fmean(timings) * 1000,
                "round_trips": writes[0] / requests,
                "statements": statements[0] / requests,
            }
    await database.dispose()
    return results


def child(args: argparse.Namespace) -> None:
    results = asyncio.run(measure(args.data_dir, args.url, args.requests))
    print(json.dumps(results))


def run_child(src: str, args: argparse.Namespace, url: str) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=src)
    command = [
        sys.executable,
        __file__,
        "--child",
        "--url",
        url,
        "--data-dir",
        str(args.data_dir),
        "--requests",
        str(args.requests),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{src}: the measuring child failed\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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
            await prepare(database, args.data_dir, 200, 5_000)
            await database.dispose()

        asyncio.run(seed())
        trees = {"this": str(ROOT / "src")}
        if args.compare:
            trees = {"compare": args.compare, **trees}
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, src in trees.items():
                rounds[name].append(run_child(src, args, url))
        report(trees, rounds)
    finally:
        server.stop()


def report(trees: dict[str, str], rounds: dict[str, list[dict[str, Any]]]) -> None:
    names = list(rounds[next(iter(trees))][0])
    print(
        f"{'endpoint':34} "
        + " ".join(f"{t + ' ms':>12} {'cpu':>5} {'rt':>5} {'sql':>4}" for t in trees)
    )
    for endpoint in names:
        cells = []
        for tree in trees:
            runs = [r[endpoint] for r in rounds[tree]]
            ms = min(r["ms"] for r in runs)  # best median over the rounds: least noise
            cpu = statistics.median(r["cpu_ms"] for r in runs)
            rt, sql = runs[0]["round_trips"], runs[0]["statements"]
            cells.append(f"{ms:12.2f} {cpu:5.2f} {rt:5.1f} {sql:4.1f}")
        print(f"{endpoint:34} " + " ".join(cells))
    for tree, src in trees.items():
        print(f"  {tree}: {src}")
    print("ms = best of the rounds' median ms/request; cpu = median over the rounds of this")
    print("process's CPU ms/request (app and client, without the database's);")
    print("rt = socket writes (round trips) per")
    print("request; sql = statements per request (without BEGIN/COMMIT/ping).")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "tk-overhead"
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--compare", default=None, help="another src/ tree to measure alongside")
    parser.add_argument("--only", default=None, help="endpoints whose name contains this")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    cli = parser.parse_args()
    if cli.only:
        os.environ["TK_BENCH_ONLY"] = cli.only
    if cli.child:
        child(cli)
    else:
        main(cli)
