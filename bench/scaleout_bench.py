"""Scale-out benchmark: the 3 star endpoints through one node and through the distributed set-ups.

    PYTHONPATH=src python bench/scaleout_bench.py            # 1M tickets, 10k users (seeds once)
    PYTHONPATH=src python bench/scaleout_bench.py --quick    # 50k tickets, short runs

Set-ups, measured one after the other in the same run against the same data, each as a ratio
to "one node" (so the figures compare only within one run):

- one node             `serve --workers W` (W = --workers, default 2)
- one node, cache off  the same with TK_DB_PGBOUNCER=true straight to PostgreSQL: the cost of
                       unnamed statements alone (what PgBouncer 1.18 forces)
- one node + pgbouncer through PgBouncer (transaction mode, statement cache off)
- two nodes            two `serve --workers W/2` on their own data dirs, one PostgreSQL,
                       behind HAProxy (round robin) — or, without haproxy, two wrk processes
                       (one per node, half the connections each) whose figures are summed
- two nodes + replica  the same with DATABASE_REPLICA_URL (a pg_basebackup streaming replica)
- two nodes + pgbouncer
- one node (again)     the baseline repeated last: the drift of the machine during the run

Endpoints: GET /api/tickets/my?page=1, GET /api/tickets/my/{id}, POST /api/tickets/my; wrk
-t2 -c32 (--connections), bearer sessions. Everything shares the machine's cores: expect no
absolute gain from two nodes here; the point is what each distributed piece costs.
Data, seeding and wrk scripts are bench/tickets_bench.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tickets_bench as tb

from tekudasai.config import Settings
from tekudasai.db.embedded import (
    SYSTEM_USER,
    EmbeddedPostgres,
    bin_path,
    run_as_owner_kwargs,
)
from tekudasai.db.session import Database

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
)
HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
)


@dataclass
class Setup:
    name: str
    nodes: int
    env: dict[str, str] = field(default_factory=dict)
    replica: bool = False
    pgbouncer: bool = False


SETUPS = [
    Setup("one node", 1),
    Setup("one node, cache off", 1, {"TK_DB_PGBOUNCER": "true"}),
    Setup("one node + pgbouncer", 1, pgbouncer=True),
    Setup("two nodes", 2),
    Setup("two nodes + replica", 2, replica=True),
    Setup("two nodes + pgbouncer", 2, pgbouncer=True),
    # The baseline once more: how far the machine drifted during the run.
    Setup("one node (again)", 1),
]


# -- the distributed pieces --------------------------------------------------------------------


def _owned_dir(prefix: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SYSTEM_USER)
        shutil.chown(directory, entry.pw_uid, entry.pw_gid)
        directory.chmod(0o755)
    return directory


def start_replica(primary: EmbeddedPostgres) -> EmbeddedPostgres:
    """A streaming replica of the bench's embedded PostgreSQL (pg_basebackup -R)."""
    pgdata = _owned_dir("tk-bench-replica-") / "pgdata"
    subprocess.run(
        [
            str(bin_path("pg_basebackup")),
            *("-D", str(pgdata), "-R", "-X", "stream", "-c", "fast"),
            *("-h", str(primary.socket_dir), "-p", "5432", "-U", "postgres"),
        ],
        check=True,
        capture_output=True,
        cwd="/",
        **run_as_owner_kwargs(),
    )
    for copied in (*pgdata.glob(".s.PGSQL.*.lock"), pgdata / "log"):
        copied.unlink(missing_ok=True)
    replica = EmbeddedPostgres(pgdata)
    replica.ensure_running()
    return replica


def start_pgbouncer(primary: EmbeddedPostgres, port: int) -> subprocess.Popen[bytes]:
    directory = _owned_dir("tk-bench-pgbouncer-")
    config = directory / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"* = host={primary.socket_dir} port=5432 user=postgres\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        "auth_type = any\npool_mode = transaction\n"
        "max_client_conn = 1000\ndefault_pool_size = 20\n"
        f"logfile = {directory / 'pgbouncer.log'}\n"
    )
    command = [str(PGBOUNCER), str(config)]
    if os.geteuid() == 0:
        command = ["runuser", "-u", SYSTEM_USER, "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port(port)
    return process


def start_haproxy(ports: list[int], port: int) -> subprocess.Popen[bytes]:
    config = Path(tempfile.mkdtemp(prefix="tk-bench-haproxy-")) / "haproxy.cfg"
    servers = "".join(f"    server n{i} 127.0.0.1:{p}\n" for i, p in enumerate(ports))
    config.write_text(
        "global\n    maxconn 2000\n"
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 60s\n"
        "    timeout server 60s\n    option http-keep-alive\n"
        f"frontend desk\n    bind 127.0.0.1:{port}\n    default_backend nodes\n"
        "backend nodes\n    balance roundrobin\n"
        "    option httpchk GET /api/health/ready\n" + servers.replace("\n", " check\n")
    )
    process = subprocess.Popen(
        [str(HAPROXY), "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_port(port)
    return process


def _wait_port(port: int, timeout: float = 15) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def start_node(
    args: argparse.Namespace, url: str, workers: int, env: dict[str, str], n: int
) -> tuple[subprocess.Popen[bytes], int]:
    port = tb.free_port()
    node_env = tb.env_for(args.data_dir / f"node{n}")
    node_env.update(DATABASE_URL=url, **env)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tekudasai", "serve"),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=node_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/api/health/ready", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"node {n} did not become ready")


def stop(process: subprocess.Popen[bytes], group: bool = False) -> None:
    if process.poll() is not None:
        return
    if group:
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


# -- measuring ---------------------------------------------------------------------------------


def measure(args: argparse.Namespace, name: str, urls: list[str], script: Path) -> tb.Run:
    """wrk against one URL, or one wrk per URL (connections split) run at once and summed."""
    if len(urls) == 1:
        tb.wrk(name, urls[0], script, 1, args.connections)  # warm-up
        return tb.wrk(name, urls[0], script, args.seconds, args.connections)
    share = max(1, args.connections // len(urls))
    for url in urls:
        tb.wrk(name, url, script, 1, share)
    with_threads = [
        subprocess.Popen(
            [
                "wrk",
                f"-c{share}",
                "-t1",
                f"-d{args.seconds}s",
                "--latency",
                "--timeout",
                "10s",
                "-s",
                str(script),
                url,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for url in urls
    ]
    outputs = [p.communicate()[0] for p in with_threads]
    runs = [_parse(name, out) for out in outputs]
    return tb.Run(
        name,
        sum(r.rps for r in runs),
        max(r.p50_ms for r in runs),
        max(r.p99_ms for r in runs),
        sum(r.errors for r in runs),
    )


def _parse(name: str, out: str) -> tb.Run:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return tb.Run(
        name,
        rps,
        tb._wrk_ms(out, "50%"),
        tb._wrk_ms(out, "99%"),
        int(non2xx.group(1)) if non2xx else 0,
    )


async def prepare(args: argparse.Namespace, server: EmbeddedPostgres) -> dict[str, Any]:
    url = server.url("tekudasai")
    settings = Settings(
        DATABASE_URL=url, TK_DATA_DIR=str(args.data_dir), BETTER_AUTH_SECRET=tb.SECRET
    )
    database = Database.connect(url, settings, pool_size=2)
    await tb.prepare(database, args.data_dir, args.users, args.tickets)
    who = await tb.people(database)
    await database.dispose()
    return who


def run_setup(
    args: argparse.Namespace,
    setup: Setup,
    server: EmbeddedPostgres,
    replica: EmbeddedPostgres | None,
    endpoints: list[tuple[str, str, str, str, str | None]],
    scripts: Path,
) -> list[tb.Run]:
    started: list[tuple[subprocess.Popen[bytes], bool]] = []
    try:
        url = server.url("tekudasai")
        env = dict(setup.env)
        if setup.pgbouncer:
            port = tb.free_port()
            started.append((start_pgbouncer(server, port), False))
            url = f"postgresql://postgres@127.0.0.1:{port}/tekudasai"
            env.update(TK_DB_PGBOUNCER="true")
        if setup.replica:
            assert replica is not None
            env.update(DATABASE_REPLICA_URL=replica.url("tekudasai"))
        workers = max(1, args.workers // setup.nodes)
        ports = []
        for n in range(setup.nodes):
            process, port = start_node(args, url, workers, env, n)
            started.append((process, True))
            ports.append(port)
        bases = [f"http://127.0.0.1:{p}" for p in ports]
        if setup.nodes > 1 and HAPROXY and not args.no_haproxy:
            lb_port = tb.free_port()
            started.append((start_haproxy(ports, lb_port), False))
            bases = [f"http://127.0.0.1:{lb_port}"]
        if setup.replica:
            time.sleep(1.5)  # a first lag sample in every worker
        runs = []
        for name, method, path, token, body in endpoints:
            script = tb.wrk_script(scripts, re.sub(r"\W+", "_", name), method, token, body)
            run = measure(args, name, [b + path for b in bases], script)
            runs.append(run)
            print(f"  {setup.name:<24} {name:<10} {run.rps:8.0f} req/s", flush=True)
        return runs
    finally:
        for process, group in reversed(started):
            stop(process, group)


def report(args: argparse.Namespace, results: dict[str, list[tb.Run]]) -> None:
    print()
    lb = "haproxy" if HAPROXY and not args.no_haproxy else "split wrk (no haproxy)"
    print(
        f"tickets={args.tickets} users={args.users}; wrk -t2 -c{args.connections}"
        f" -d{args.seconds}s; {args.workers} workers in all; two nodes behind {lb}"
    )
    baseline = {run.name: run for run in results.get("one node", [])}
    print(
        f"{'set-up':<24}{'endpoint':<12}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'non2xx':>8}{'vs one node':>13}"
    )
    for setup, runs in results.items():
        for run in runs:
            base = baseline.get(run.name)
            ratio = f"{run.rps / base.rps:.2f}" if base and base.rps else "-"
            print(
                f"{setup:<24}{run.name:<12}{run.rps:>8.0f}{run.p50_ms:>9.1f}"
                f"{run.p99_ms:>9.1f}{run.errors:>8}{ratio:>13}"
            )


def main(args: argparse.Namespace) -> None:
    args.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(tb.env_for(args.data_dir))
    server = EmbeddedPostgres(args.data_dir / "pgdata")
    server.ensure_running()
    replica: EmbeddedPostgres | None = None
    try:
        tb.tekudasai(args.data_dir, "db", "migrate", stdout=subprocess.DEVNULL)
        who = asyncio.run(prepare(args, server))
        new_ticket = json.dumps(
            {
                "formId": who["form_id"],
                "summary": "Benchmark printer on fire",
                "formResponse": {"category": "hardware", "description": "It smokes"},
            }
        )
        rep = who["reporter"]
        endpoints: list[tuple[str, str, str, str, str | None]] = [
            ("my list", "GET", "/api/tickets/my?page=1", rep, None),
            ("my ticket", "GET", f"/api/tickets/my/{who['ticket_id']}", rep, None),
            ("create", "POST", "/api/tickets/my", rep, new_ticket),
        ]
        setups = [s for s in SETUPS if not args.only or any(w in s.name for w in args.only)]
        if any(s.pgbouncer for s in setups) and PGBOUNCER is None:
            print("pgbouncer is not installed: its set-ups are left out")
            setups = [s for s in setups if not s.pgbouncer]
        if any(s.replica for s in setups):
            replica = start_replica(server)
        scripts = Path(tempfile.mkdtemp(prefix="tk-scaleout-"))
        results: dict[str, list[tb.Run]] = {}
        for setup in setups:
            results[setup.name] = run_setup(args, setup, server, replica, endpoints, scripts)
        report(args, results)
    finally:
        if replica is not None:
            replica.stop(mode="immediate")
            shutil.rmtree(replica.pgdata.parent, ignore_errors=True)
        if not args.keep_running:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, short runs")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seconds", type=int, default=None)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="worker processes in all")
    parser.add_argument("--only", type=lambda v: v.split(","), default=None)
    parser.add_argument("--no-haproxy", action="store_true", help="split wrk instead")
    parser.add_argument("--keep-running", action="store_true", help="leave PostgreSQL running")
    args = parser.parse_args()
    args.users, args.tickets = (1_000, 50_000) if args.quick else (10_000, 1_000_000)
    args.seconds = args.seconds or (3 if args.quick else 10)
    default_dir = "tk-tickets-bench-quick" if args.quick else "tk-tickets-bench"
    args.data_dir = Path(args.data_dir or Path(tempfile.gettempdir()) / default_dir)
    main(args)
