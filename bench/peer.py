"""Side by side: the original Te Kudasai (TypeScript on Bun) and this one, in one run.

    PYTHONPATH=src python bench/peer.py            # 1,000 users, 100,000 tickets, 3 runs x 15 s
    PYTHONPATH=src python bench/peer.py --quick    # 10,000 tickets, 1 run x 5 s (a smoke test)

Both systems run against one PostgreSQL 18 (the embedded binaries, on a TCP port), each in a
database of its own with the same data shape: about 1,000 users and 100,000 tickets, plus a
customer who signed up through the system's own sign-up endpoint and filed 75 tickets through its
API, and an admin who signed up the same way. The same wrk scripts (`-t2 -c32`, a warm-up, then
the measured run; cookie sessions and an Origin header on both) run against each system in turn,
alternating for every run; the table gives medians and the ratio ours / original.

The original is cloned from its public repository into --work (never into this repository),
installed with Bun (`npm i -g bun` when Bun is missing) and migrated with its own drizzle-kit;
it serves with `NODE_ENV=production`. Ours runs `tekudasai serve --workers 2` with rate limits
off (the original has none on these routes) and background jobs on, as deployed; every run
starts once our job queue has drained, so the follow-up work of the tickets a create run filed
(events, notification mail) takes no CPU from the next runs, ours or the original's. --work is
kept between runs: the build and the seeded databases are reused.

    PYTHONPATH=src python bench/peer.py --against /path/to/other/src --only "my/{id}"

--against SRC measures ours against ours from another source tree (a commit before a change,
checked out with `git worktree add`) instead of the original, on the same database: the way a
speed-up is kept or reverted. --only narrows the endpoints to those whose name contains it.

Needs git, npm and wrk (`apt-get install -y wrk`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tekudasai.db.embedded import EmbeddedPostgres, bin_path, run_as_owner_kwargs

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = "https://github.com/amyisdev/te-kudasai.git"
SECRET = "peer-bench-secret-that-is-long-enough-0123456789"
PASSWORD = "peer-bench-Password-1"
CUSTOMER = "peer.customer@example.com"
ADMIN = "peer.admin@example.com"
CUSTOMER_TICKETS = 75
# Who files the create runs' tickets: not the customer whose list and ticket the reads measure,
# so that customer keeps CUSTOMER_TICKETS whatever the runs before filed.
FILER = "peer.filer@example.com"
# The same vocabulary on both sides: "printer" is in about 13 % of summaries, "zebra" is rare.
WORDS = ("laptop", "email", "vpn", "password", "screen", "keyboard", "network", "access")
FORM_ELEMENTS = [
    {
        "id": "e1",
        "type": "dropdown",
        "name": "category",
        "label": "Category",
        "options": [
            {"id": "o1", "label": "Hardware", "value": "hardware"},
            {"id": "o2", "label": "Software", "value": "software"},
        ],
    },
    {
        "id": "e2",
        "type": "textarea",
        "name": "description",
        "label": "What happened?",
        "required": True,
        "placeholder": "",
    },
]
ANSWERS = {"category": "hardware", "description": "The printer on floor 2 jams"}


@dataclass
class Run:
    rps: float
    p99_ms: float
    errors: int


@dataclass
class System:
    name: str
    base: str
    customer_cookie: str
    admin_cookie: str
    filer_cookie: str
    ticket_id: int
    form_id: str
    process: subprocess.Popen[bytes]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=True, text=True, **kwargs)


# -- the original: build -------------------------------------------------------------------------


def ensure_bun() -> str:
    bun = shutil.which("bun")
    if bun is None:
        log("installing Bun from npm (npm i -g bun) …")
        run(["npm", "i", "-g", "bun"], stdout=subprocess.DEVNULL)
        bun = shutil.which("bun")
    if bun is None:
        sys.exit("bun is not on PATH after `npm i -g bun`")
    return bun


def build_original(work: Path, source: str, bun: str) -> Path:
    checkout = work / "original"
    if not (checkout / "package.json").exists():
        log(f"cloning the original from {source} …")
        shutil.rmtree(checkout, ignore_errors=True)
        run(["git", "clone", "--quiet", "--depth", "1", source, str(checkout)])
    if not (checkout / "node_modules").exists():
        log("bun install …")
        run([bun, "install"], cwd=checkout, stdout=subprocess.DEVNULL)
    if not (checkout / "packages/forms/dist/index.js").exists():
        run([bun, "run", "build"], cwd=checkout / "packages/forms", stdout=subprocess.DEVNULL)
    return checkout


# -- PostgreSQL 18 on a TCP port -----------------------------------------------------------------


@contextmanager
def postgres(work: Path) -> Iterator[int]:
    """The embedded PostgreSQL, initialised once in --work, started on 127.0.0.1:port."""
    pgdata = work / "pgdata"
    server = EmbeddedPostgres(pgdata)
    server.ensure_running()  # initialises on first use, with our settings
    server.stop()
    port = free_port()
    sockets = Path(tempfile.mkdtemp(prefix="peer-pg-"))
    sockets.chmod(0o777)
    pg_ctl = str(bin_path("pg_ctl"))
    options = f"-h 127.0.0.1 -p {port} -k {sockets}"
    logfile = pgdata / "peer.log"
    run(
        [pg_ctl, "-D", str(pgdata), "-w", "-o", options, "-l", str(logfile), "start"],
        stdout=subprocess.DEVNULL,
        cwd="/",
        **run_as_owner_kwargs(),
    )
    try:
        yield port
    finally:
        subprocess.run(
            [pg_ctl, "-D", str(pgdata), "-m", "fast", "-w", "stop"],
            stdout=subprocess.DEVNULL,
            cwd="/",
            **run_as_owner_kwargs(),
        )


def psql(port: int, database: str, sql: str) -> str:
    result = subprocess.run(
        [str(bin_path("psql")), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d",
         database, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
        capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        sys.exit(f"psql on {database} failed: {result.stderr.strip()}")
    return result.stdout.strip()


SEEDED = "peer_seeded"  # a table made last: the database holds a complete data set


def ensure_database(port: int, name: str) -> bool:
    """An empty database; False when a complete one is there from an earlier run."""
    if psql(port, "postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
        if psql(port, name, f"SELECT to_regclass('{SEEDED}') IS NOT NULL") == "t":
            return False
        psql(port, "postgres", f"DROP DATABASE {name} WITH (FORCE)")
    psql(port, "postgres", f"CREATE DATABASE {name}")
    return True


# -- serving -------------------------------------------------------------------------------------


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{base}: the server exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    sys.exit(f"{base}: not ready after {timeout:.0f}s")


def start_original(checkout: Path, bun: str, database_url: str, port: int) -> Any:
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "NODE_ENV": "production",
        "PORT": str(port),
        "DATABASE_URL": database_url,
        "BETTER_AUTH_SECRET": SECRET,
        "BETTER_AUTH_URL": base,
        "TRUSTED_ORIGINS": base,
    }
    process = subprocess.Popen(
        [bun, "run", "src/index.ts"],
        cwd=checkout / "apps/backend",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_ready(base, process)
    return base, process


def ours_env(
    work: Path, database_url: str, base: str, source: Path = ROOT / "src"
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TK_")}
    env.update(
        DATABASE_URL=database_url,
        TK_DATA_DIR=str(work / "ours-data"),
        BETTER_AUTH_SECRET=SECRET,
        BETTER_AUTH_URL=base,
        TK_ENV="production",
        TK_RATE_LIMITS="off",
        TK_BACKUP_INTERVAL="off",
        TK_LOG_LEVEL="WARNING",
        PYTHONPATH=str(source),
    )
    return env


def tekudasai(env: dict[str, str], *args: str) -> None:
    run([sys.executable, "-m", "tekudasai", *args], env=env, stdout=subprocess.DEVNULL)


def start_ours(env: dict[str, str], port: int, workers: int) -> Any:
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "tekudasai", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    wait_ready(base, process)
    return base, process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


# -- data: the same shape on both sides ------------------------------------------------------------


def summary_sql(seed: str) -> str:
    """A summary per row from the shared vocabulary, as SQL over generate_series `g`."""
    words = "(ARRAY[" + ",".join(f"'{w}'" for w in WORDS) + "])"
    return (
        f"(CASE WHEN hashtext('{seed}' || g) % 100 BETWEEN -6 AND 6 THEN 'printer ' "
        f"WHEN g % 50000 = 7 THEN 'zebra ' ELSE '' END) || "
        f"{words}[1 + abs(hashtext('w' || g)) % {len(WORDS)}] || ' problem ' || g"
    )


def sign_up(base: str, email: str, name: str) -> None:
    body = {"email": email, "password": PASSWORD, "name": name}
    response = httpx.post(
        f"{base}/api/auth/sign-up/email", json=body, headers={"Origin": base}, timeout=30
    )
    if response.status_code != 200:
        sys.exit(f"{base}: sign-up of {email} answered {response.status_code}: {response.text}")


def signed_up(base: str, email: str, name: str) -> str:
    """The session cookie of someone who may not have signed up yet (a work dir seeded by an
    older version of this bench): signs them up first if signing in fails."""
    if _sign_in(base, email).status_code != 200:
        sign_up(base, email, name)
    return sign_in(base, email)


def sign_in(base: str, email: str) -> str:
    """The session cookie (`name=value`) a browser would keep."""
    response = _sign_in(base, email)
    if response.status_code != 200:
        sys.exit(f"{base}: sign-in of {email} answered {response.status_code}: {response.text}")
    cookie = response.cookies.get("tk.session_token")
    if not cookie:
        sys.exit(f"{base}: sign-in set no tk.session_token cookie")
    return f"tk.session_token={cookie}"


def _sign_in(base: str, email: str) -> httpx.Response:
    return httpx.post(
        f"{base}/api/auth/sign-in/email",
        json={"email": email, "password": PASSWORD},
        headers={"Origin": base},
        timeout=30,
    )


def file_tickets(base: str, cookie: str, form_id: str, count: int) -> int:
    headers = {"Cookie": cookie, "Origin": base}
    last = 0
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        for n in range(count):
            word = random.choice(WORDS)
            body = {"formId": form_id, "summary": f"My {word} issue {n}", "formResponse": ANSWERS}
            response = http.post("/api/tickets/my", json=body)
            if response.status_code != 200:
                sys.exit(f"{base}: filing a ticket answered {response.status_code}")
            last = int(response.json()["data"]["id"])
    return last


def create_form(base: str, admin_cookie: str) -> str:
    body = {"name": "IT support", "description": "Hardware and software", "elements": FORM_ELEMENTS}
    response = httpx.post(
        f"{base}/api/forms",
        json=body,
        headers={"Cookie": admin_cookie, "Origin": base},
        timeout=30,
    )
    if response.status_code != 200:
        sys.exit(f"{base}: creating the form answered {response.status_code}: {response.text}")
    return str(response.json()["data"]["id"])


# -- wrk -----------------------------------------------------------------------------------------


def settle(base: str, timeout: float = 120) -> None:
    """Wait until the server answers at once again: requests left over from the previous
    endpoint (slow sign-ins still queued after wrk stopped) must not land in the next one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = time.perf_counter()
        with suppress(httpx.HTTPError):
            httpx.get(f"{base}/api/health", timeout=timeout)
        if time.perf_counter() - started < 0.05:
            return
        time.sleep(0.5)


RUNNABLE_JOBS = (
    "SELECT count(*) FROM jobs WHERE status = 'running'"
    " OR (status = 'queued' AND run_after <= now())"
)


def drain_jobs(port: int, database: str, timeout: float = 600) -> float:
    """Wait until our job queue has nothing runnable; the seconds waited.

    Each ticket created queues its follow-up work (events, notification mail). Left running,
    that work would take CPU from whichever system the next runs measure, ours or the
    original, so every run starts with the queue drained."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if int(psql(port, database, RUNNABLE_JOBS).strip() or 0) == 0:
            break
        time.sleep(1)
    return time.monotonic() - started


def wrk_script(directory: Path, name: str, method: str, headers: dict[str, str], body: Any) -> Path:
    lines = [f'wrk.method = "{method}"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    if body is not None:
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append(f"wrk.body = [[{json.dumps(body)}]]")
    path = directory / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def wrk(url: str, script: Path, seconds: int, connections: int) -> Run:
    out = run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "30s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: .*?(\d+) timeout"):
        found = re.search(pattern, out)
        errors += int(found.group(1)) if found else 0
    return Run(rps, _ms(out, "99%"), errors)


def _ms(out: str, label: str) -> float:
    found = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)\b", out)
    if not found:
        return float("nan")
    value, unit = float(found.group(1)), found.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def endpoints(system: System) -> list[tuple[str, str, str, dict[str, str], Any]]:
    """(name, method, path, headers, body) — the same requests for both systems."""
    customer = {"Cookie": system.customer_cookie, "Origin": system.base}
    admin = {"Cookie": system.admin_cookie, "Origin": system.base}
    filer = {"Cookie": system.filer_cookie, "Origin": system.base}
    create = {"formId": system.form_id, "summary": "Printer jams", "formResponse": ANSWERS}
    return [
        ("GET /api/tickets/my?page=1", "GET", "/api/tickets/my?page=1", customer, None),
        ("GET /api/tickets/my/{id}", "GET", f"/api/tickets/my/{system.ticket_id}", customer, None),
        ("POST /api/tickets/my", "POST", "/api/tickets/my", filer, create),
        ("GET /api/tickets?search=printer", "GET", "/api/tickets?search=printer", admin, None),
        (
            "POST /api/auth/sign-in/email",
            "POST",
            "/api/auth/sign-in/email",
            {"Origin": system.base},
            {"email": CUSTOMER, "password": PASSWORD},
        ),
        ("GET /api/health", "GET", "/api/health", {}, None),
    ]


def rss_mb(pid: int) -> list[float]:
    """Resident memory of a process and its descendants, each in MB."""
    found: list[float] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            kb = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
            found.append(kb / 1024)
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(c) for c in children)
        except (OSError, AttributeError):
            continue
    return found


# -- main ----------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    against = Path(args.against).resolve() if args.against else None
    if against is None:
        bun = ensure_bun()
        checkout = build_original(work, args.source, bun)
    tickets = 10_000 if args.quick else args.tickets
    runs, seconds, warmup = (1, 5, 2) if args.quick else (args.runs, args.seconds, args.warmup)
    suffix = f"{args.users}_{tickets}"
    with postgres(work) as pg_port:
        url = f"postgresql://postgres@127.0.0.1:{pg_port}"
        original_db, ours_db = f"original_{suffix}", f"ours_{suffix}"
        fresh_ours = ensure_database(pg_port, ours_db)
        systems: list[System] = []

        # The original: its own migrations, then its own sign-up; bulk rows by SQL.
        fresh_original = against is None and ensure_database(pg_port, original_db)
        if fresh_original:
            log("migrating the original with drizzle-kit …")
            run(
                [bun, "x", "drizzle-kit", "migrate"],
                cwd=checkout / "apps/backend",
                env={**os.environ, "DATABASE_URL": f"{url}/{original_db}"},
                stdout=subprocess.DEVNULL,
            )
        if against is None:
            base, process = start_original(checkout, bun, f"{url}/{original_db}", free_port())
            systems.append(
                setup_system(
                    "original",
                    base,
                    process,
                    fresh_original,
                    lambda: original_admin(pg_port, original_db),
                    lambda: seed_original(pg_port, original_db, args.users, tickets),
                    lambda: psql(pg_port, original_db, f"CREATE TABLE {SEEDED} ()"),
                )
            )

        # Ours: its own migrations and bulk seeder, then its own sign-up.
        env = ours_env(work, f"{url}/{ours_db}", "http://127.0.0.1")
        if fresh_ours:
            log(f"seeding ours: {args.users} users, {tickets} tickets …")
            tekudasai(env, "db", "migrate")
            tekudasai(env, "db", "seed", "--users", str(args.users), "--tickets", str(tickets))
        port = free_port()
        env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{port}"
        base, process = start_ours(env, port, args.workers)
        systems.append(
            setup_system(
                "ours",
                base,
                process,
                fresh_ours,
                lambda: tekudasai(env, "users", "set-role", ADMIN, "admin"),
                lambda: psql(pg_port, ours_db, "VACUUM ANALYZE"),
                lambda: psql(pg_port, ours_db, f"CREATE TABLE {SEEDED} ()"),
            )
        )
        if against is not None:
            # The baseline: the same database, served from the other tree (seeded above).
            port = free_port()
            other = ours_env(work, f"{url}/{ours_db}", f"http://127.0.0.1:{port}", against)
            other["TK_DATA_DIR"] = str(work / "baseline-data")  # its own metrics files
            base, process = start_ours(other, port, args.workers)
            systems.insert(0, setup_system("baseline", base, process, False, *[lambda: None] * 3))
        # Earlier invocations' create runs filed tickets (and, ours, their events, jobs and
        # mails): back to the seeded shape, or each invocation would measure a bigger database.
        for system in systems:
            if system.name == "original":
                forget_filed(pg_port, original_db, system.ticket_id, ours=False)
            elif system.name == "ours":
                # A backlog left by an interrupted invocation is being dispatched by now, and
                # deleting its tickets under the dispatch deadlocks: let it finish first.
                drain_jobs(pg_port, ours_db)
                forget_filed(pg_port, ours_db, system.ticket_id, ours=True)
                shutil.rmtree(work / "ours-data" / "outbox", ignore_errors=True)
        try:
            results = measure(
                systems,
                runs,
                seconds,
                warmup,
                args.connections,
                args.only,
                drain=lambda: drain_jobs(pg_port, ours_db),
            )
            memory = {s.name: rss_mb(s.process.pid) for s in systems}
        finally:
            for system in systems:
                stop(system.process)
    report(results, memory, runs, seconds, tickets, args)


def original_admin(port: int, database: str) -> None:
    # The original stores e-mail addresses hashed and encrypted: the first to sign up is the admin.
    psql(
        port,
        database,
        "UPDATE users SET role = 'admin' WHERE id = "
        "(SELECT id FROM users ORDER BY created_at LIMIT 1)",
    )


def seed_original(port: int, database: str, users: int, tickets: int) -> None:
    """Users and tickets in bulk through SQL, as the original stores them (hashed e-mail and
    name, no password: they never sign in), on the form the admin created through the API."""
    log(f"seeding the original: {users} users, {tickets} tickets …")
    form_id = psql(port, database, "SELECT id FROM forms ORDER BY created_at LIMIT 1")
    statuses = "(ARRAY['open','in_progress','pending','resolved','closed'])"
    psql(
        port,
        database,
        f"""
        INSERT INTO users (id, name, email, email_verified, role)
        SELECT 'u' || g, md5('name' || g), md5('mail' || g) || '@tk.local', false, 'user'
        FROM generate_series(1, {users - 2}) g;
        INSERT INTO tickets (reporter_id, summary, status, form_id, form_response, created_at)
        SELECT 'u' || (1 + abs(hashtext('r' || g)) % {users - 2}), {summary_sql("s")},
               {statuses}[1 + abs(hashtext('t' || g)) % 5], '{form_id}',
               '{json.dumps(ANSWERS)}'::jsonb, now() - make_interval(secs => {tickets} - g)
        FROM generate_series(1, {tickets}) g;
        """,
    )
    psql(port, database, "VACUUM ANALYZE")


def forget_filed(port: int, database: str, last_seeded: int, *, ours: bool) -> None:
    """Delete the tickets filed after the seeding (the customer's newest, `last_seeded`, is the
    last seeded one) with their audit rows; ours also loses the finished jobs and the follow-up
    work of those tickets. Then VACUUM, so the tables are back to the seeded shape."""
    removed = psql(
        port,
        database,
        f"DELETE FROM ticket_logs WHERE ticket_id > {last_seeded};"
        f" WITH gone AS (DELETE FROM tickets WHERE id > {last_seeded} RETURNING 1)"
        " SELECT count(*) FROM gone;",
    ).strip()
    if ours:
        psql(
            port,
            database,
            "DELETE FROM jobs WHERE status IN ('done', 'failed')"
            " OR (status = 'queued' AND name IN ('tickets.dispatch_event', 'mail.send'))",
        )
        psql(port, database, "VACUUM FULL jobs")
    psql(port, database, "VACUUM ANALYZE")
    if removed not in ("", "0"):
        log(f"{database}: removed {removed} tickets filed by earlier runs")


def setup_system(
    name: str,
    base: str,
    process: subprocess.Popen[bytes],
    fresh: bool,
    make_admin: Callable[[], object],
    bulk: Callable[[], object],
    done: Callable[[], object],
) -> System:
    """Sign-ups (fresh database only), the admin's form, bulk rows, the customer's tickets;
    then sessions for both people."""
    if fresh:
        sign_up(base, ADMIN, "Peer Admin")
        sign_up(base, CUSTOMER, "Peer Customer")
        make_admin()
    admin = sign_in(base, ADMIN)
    customer = sign_in(base, CUSTOMER)
    filer = signed_up(base, FILER, "Peer Filer")
    if fresh:
        form_id = create_form(base, admin)
        bulk()
        file_tickets(base, customer, form_id, CUSTOMER_TICKETS)
        done()
    mine = httpx.get(
        f"{base}/api/tickets/my?page=1", headers={"Cookie": customer}, timeout=30
    ).json()
    ticket_id = int(mine["data"][0]["id"])
    form_id = str(
        httpx.get(
            f"{base}/api/tickets/my/{ticket_id}", headers={"Cookie": customer}, timeout=30
        ).json()["data"]["formId"]
    )
    log(f"{name}: ready at {base} (customer's ticket {ticket_id}, form {form_id})")
    return System(name, base, customer, admin, filer, ticket_id, form_id, process)


def measure(
    systems: list[System],
    runs: int,
    seconds: int,
    warmup: int,
    connections: int,
    only: str | None = None,
    drain: Callable[[], float] = lambda: 0.0,
) -> dict[str, dict[str, list[Run]]]:
    results: dict[str, dict[str, list[Run]]] = {s.name: {} for s in systems}
    scripts = Path(tempfile.mkdtemp(prefix="peer-wrk-"))

    def chosen(system: System) -> list[tuple[str, str, str, dict[str, str], Any]]:
        return [e for e in endpoints(system) if only is None or only in e[0]]

    if not chosen(systems[0]):
        names = ", ".join(e[0] for e in endpoints(systems[0]))
        raise SystemExit(f"--only {only!r} names no endpoint; the endpoints are: {names}")
    total = runs * len(systems) * len(chosen(systems[0]))
    done = 0
    for round_number in range(runs):
        for system in systems if round_number % 2 == 0 else list(reversed(systems)):
            for name, method, path, headers, body in chosen(system):
                slug = system.name + "_" + re.sub(r"\W+", "_", name)
                script = wrk_script(scripts, slug, method, headers, body)
                waited = drain()
                if waited >= 1:
                    log(f"waited {waited:.0f} s for our job queue to drain")
                settle(system.base)
                wrk(system.base + path, script, warmup, connections)
                result = wrk(system.base + path, script, seconds, connections)
                results[system.name].setdefault(name, []).append(result)
                done += 1
                log(
                    f"[{done}/{total}] run {round_number + 1} {system.name:8} {name:34} "
                    f"{result.rps:9.1f} req/s  p99 {result.p99_ms:7.1f} ms  errors {result.errors}"
                )
    return results


def report(
    results: dict[str, dict[str, list[Run]]],
    memory: dict[str, list[float]],
    runs: int,
    seconds: int,
    tickets: int,
    args: argparse.Namespace,
) -> None:
    print(
        f"\nSide by side, one run of {time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} CPUs: "
        f"{args.users} users, {tickets} tickets, wrk -t2 -c{args.connections}, {seconds}s after "
        f"a warm-up, medians of {runs} alternating run(s); ours serve --workers {args.workers}.\n"
    )
    other = "baseline" if "baseline" in results else "original"
    print(f"| endpoint | {other} req/s (p99) | ours req/s (p99) | ours / {other} |")
    print("|---|---|---|---|")
    for name, original_runs in results[other].items():
        ours_runs = results["ours"][name]
        o_rps = statistics.median(r.rps for r in original_runs)
        u_rps = statistics.median(r.rps for r in ours_runs)
        o_p99 = statistics.median(r.p99_ms for r in original_runs)
        u_p99 = statistics.median(r.p99_ms for r in ours_runs)
        errors = sum(r.errors for r in original_runs + ours_runs)
        note = f" ({errors} non-2xx/timeouts)" if errors else ""
        ratio = f"**{u_rps / o_rps:.2f}x**" if o_rps else "n/a"
        print(
            f"| {name} | {o_rps:,.0f} ({o_p99:.0f} ms) | {u_rps:,.0f} ({u_p99:.0f} ms) | "
            f"{ratio}{note} |"
        )
    ours = memory.get("ours", [])
    workers = sorted(ours[1:], reverse=True)[: args.workers]
    print(
        f"\nRSS after the load: {other} {max(memory.get(other, [0])):.0f} MB (its main "
        f"process); ours per worker {', '.join(f'{m:.0f}' for m in workers)} MB "
        f"(supervisor {ours[0] if ours else 0:.0f} MB)."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="git URL or path of the original")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "tk-peer"))
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="10,000 tickets, 1 short run")
    parser.add_argument("--against", default=None, help="another src/ tree instead of the original")
    parser.add_argument("--only", default=None, help="endpoints whose name contains this")
    main(parser.parse_args())
