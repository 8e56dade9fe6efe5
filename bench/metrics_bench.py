"""Request throughput with metrics on vs off, in the same run.

Starts an embedded PostgreSQL in a temporary directory, then two single-worker uvicorn servers
on loopback: the normal app, and the same app built with `create_app(metrics=False)` (no
request observer, no statement timing, no pool gauges). wrk (or an httpx loop when wrk is
missing) drives each in turn, the rounds interleaved so that load from elsewhere on the machine
hits both alike. First it prints
the metrics code's own cost per request (RequestContextMiddleware with and without the observer)
and per statement (against the same embedded PostgreSQL), measured in-process (best of 7).

    PYTHONPATH=src:. python bench/metrics_bench.py [--seconds 5] [--rounds 2] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ENDPOINTS = ("/api/health", "/api/health/ready")


# -- the two apps (uvicorn --factory) -----------------------------------------------------------


def metrics_on():  # type: ignore[no-untyped-def]
    from tekudasai.app import create_app

    return create_app()


def metrics_off():  # type: ignore[no-untyped-def]
    from tekudasai.app import create_app

    return create_app(metrics=False)


# -- driving them -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(factory: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            f"bench.metrics_bench:{factory}",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health/ready", timeout=2).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server on port {port} did not become ready")


def run_wrk(url: str, seconds: int, connections: int) -> float:
    return parse_wrk(
        subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )


def parse_wrk(out: str) -> float:
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    if "Non-2xx" in out:
        raise SystemExit(f"errors during the run:\n{out}")
    return float(match.group(1))


def run_wrk_side_by_side(urls: dict[str, str], seconds: int, connections: int) -> dict[str, float]:
    """Both servers loaded at once, so they share whatever else the machine is doing."""
    procs = {
        name: subprocess.Popen(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, url in urls.items()
    }
    return {name: parse_wrk(proc.communicate()[0]) for name, proc in procs.items()}


async def _httpx_loop(url: str, seconds: int, connections: int) -> float:
    done = 0
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(limits=limits) as http:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < stop:
                await http.get(url)
                done += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
    return done / seconds


def measure(url: str, seconds: int, connections: int) -> float:
    if shutil.which("wrk"):
        return run_wrk(url, seconds, connections)
    return asyncio.run(_httpx_loop(url, seconds, min(connections, 8)))


def isolated_costs(url: str, settings, n: int = 50_000, repeats: int = 7) -> None:  # type: ignore[no-untyped-def]
    """The metrics code's own cost, best of several runs (robust to a busy machine)."""
    from types import SimpleNamespace

    from tekudasai.core.middleware import RequestContextMiddleware
    from tekudasai.db.session import Database
    from tekudasai.monitoring.metrics import RequestMetrics, instrument_engine

    route = SimpleNamespace(path_format="/api/tickets/my/{id}")

    async def endpoint(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, object]) -> None:
        return None

    async def loop(app) -> float:  # type: ignore[no-untyped-def]
        scope = {"type": "http", "method": "GET", "path": "/api/tickets/my/1", "route": route}
        started = time.perf_counter()
        for _ in range(n):
            await app(scope, receive, send)
        return (time.perf_counter() - started) / n * 1e6

    # The same middleware with and without the observer: the difference is the metrics.
    observed = RequestContextMiddleware(endpoint, observer=RequestMetrics())
    unobserved = RequestContextMiddleware(endpoint, observer=None)
    bare = min(asyncio.run(loop(unobserved)) for _ in range(repeats))
    with_metrics = min(asyncio.run(loop(observed)) for _ in range(repeats))
    print(f"{'middleware':<20} {with_metrics - bare:6.2f} us per request (best of {repeats})")

    # Statement timing on the embedded PostgreSQL: a round trip each, so fewer of them.
    count = n // 25

    async def statements(database) -> float:  # type: ignore[no-untyped-def]
        async with database.engine.connect() as conn:
            started = time.perf_counter()
            for _ in range(count):
                await conn.exec_driver_sql("SELECT 1")
            return (time.perf_counter() - started) / count * 1e6

    async def both() -> tuple[float, float]:
        plain = Database.connect(url, settings, pool_size=1)
        timed = Database.connect(url, settings, pool_size=1)
        instrument_engine(timed.engine, slow_query_ms=settings.slow_query_ms)
        try:
            plain_us = timed_us = float("inf")
            for _ in range(repeats):  # interleaved, so drift hits both alike
                plain_us = min(plain_us, await statements(plain))
                timed_us = min(timed_us, await statements(timed))
            return plain_us, timed_us
        finally:
            await plain.dispose()
            await timed.dispose()

    plain_us, timed_us = asyncio.run(both())
    print(
        f"{'statement timing':<20} {timed_us - plain_us:6.2f} us per statement "
        f"(best of {repeats}; {plain_us:.0f} us per round trip)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from tekudasai.config import Settings
    from tekudasai.db import migrate
    from tekudasai.db.embedded import EmbeddedPostgres
    from tekudasai.db.lifecycle import ensure_database
    from tekudasai.db.session import Database

    root = Path(tempfile.mkdtemp(prefix="tk-metrics-bench-"))
    server = EmbeddedPostgres(root / "pgdata", extra_settings={"fsync": "off"})
    procs: list[subprocess.Popen[bytes]] = []
    try:
        server.ensure_running()
        url = server.url("bench")
        asyncio.run(ensure_database(url))
        settings = Settings(DATABASE_URL=url, TK_DATA_DIR=str(root), TK_SECRET="b" * 48)  # type: ignore[call-arg]

        async def upgrade() -> None:
            database = Database.connect(url, settings, pool_size=1)
            await migrate.upgrade(database.engine)
            await database.dispose()

        asyncio.run(upgrade())
        repo = Path(__file__).resolve().parent.parent
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "TK_DATA_DIR": str(root),
            "BETTER_AUTH_SECRET": "b" * 48,
            "TK_BACKGROUND_JOBS": "false",
            "TK_LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([str(repo / "src"), str(repo)]),
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        ports = {"on": free_port(), "off": free_port()}
        for name, port in ports.items():
            procs.append(start_server(f"metrics_{name}", port, env))
        for port in ports.values():
            wait_ready(port)

        isolated_costs(url, settings)
        tool = "wrk" if shutil.which("wrk") else "httpx loop"
        print(
            f"{tool}, c={args.connections}, {args.seconds}s x {args.rounds} rounds, 1 worker each"
        )
        for endpoint in ENDPOINTS:
            results: dict[str, list[float]] = {"on": [], "off": []}
            for index in range(args.rounds):
                # Alternate which server goes first, so warm-up and drift do not favour one.
                for name in ("on", "off") if index % 2 == 0 else ("off", "on"):
                    rps = measure(
                        f"http://127.0.0.1:{ports[name]}{endpoint}", args.seconds, args.connections
                    )
                    results[name].append(rps)
            if shutil.which("wrk"):
                together: dict[str, list[float]] = {"on": [], "off": []}
                for _ in range(args.rounds):
                    urls = {
                        name: f"http://127.0.0.1:{port}{endpoint}" for name, port in ports.items()
                    }
                    for name, rps in run_wrk_side_by_side(
                        urls, args.seconds, args.connections // 2
                    ).items():
                        together[name].append(rps)
                ratio = statistics.median(
                    a / b for a, b in zip(together["on"], together["off"], strict=True)
                )
                print(
                    f"{endpoint:<20} side by side (c={args.connections // 2} each): on/off "
                    f"{ratio:.3f} median of {args.rounds} rounds; rounds on/off: "
                    + ", ".join(
                        f"{a:.0f}/{b:.0f}"
                        for a, b in zip(together["on"], together["off"], strict=True)
                    )
                )
            on, off = statistics.median(results["on"]), statistics.median(results["off"])
            best_on, best_off = max(results["on"]), max(results["off"])
            rounds = ", ".join(
                f"{a:.0f}/{b:.0f}" for a, b in zip(results["on"], results["off"], strict=True)
            )
            print(
                f"{endpoint:<20} metrics on {on:8.0f} req/s   off {off:8.0f} req/s   "
                f"on/off {on / off:.3f} (median)  {best_on / best_off:.3f} (best rounds)"
            )
            print(f"{'':<20} rounds on/off: {rounds}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        server.stop(mode="fast")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
