"""Request throughput with metrics on vs off, in the same run.

Starts an embedded PostgreSQL in a temporary directory, then two single-worker uvicorn servers
on loopback: the normal app, and the same app without the metrics middleware and without the
engine's query timing. wrk (or an httpx loop when wrk is missing) drives each in turn, the
rounds interleaved so that load from elsewhere on the machine hits both alike.

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
    import tekudasai.app as app_module
    from tekudasai.ops.metrics import MetricsMiddleware

    app_module.instrument_engine = lambda *args, **kwargs: None  # type: ignore[assignment]
    app = app_module.create_app()
    app.user_middleware = [m for m in app.user_middleware if m.cls is not MetricsMiddleware]
    return app


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
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    return float(match.group(1))


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


async def _asgi_loop(app, path: str, n: int) -> float:  # type: ignore[no-untyped-def]
    """Microseconds per request, calling the ASGI app directly (no network, no client)."""
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        return None

    started = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), receive, send)
    return (time.perf_counter() - started) / n * 1e6


def in_process(env: dict[str, str], rounds: int, n: int = 5000) -> None:
    """The middleware's own cost, without network or load generator noise."""
    os.environ.update(env)
    on_app, off_app = metrics_on(), metrics_off()
    results: dict[str, list[float]] = {"on": [], "off": []}
    asyncio.run(_asgi_loop(on_app, "/api/health", 500))
    asyncio.run(_asgi_loop(off_app, "/api/health", 500))
    for index in range(rounds * 2):
        order = ("on", "off") if index % 2 == 0 else ("off", "on")
        for name in order:
            app = on_app if name == "on" else off_app
            results[name].append(asyncio.run(_asgi_loop(app, "/api/health", n)))
    on, off = statistics.median(results["on"]), statistics.median(results["off"])
    print(
        f"{'in-process ASGI':<20} metrics on {on:8.1f} us/req  off {off:8.1f} us/req  "
        f"metrics cost {on - off:+.1f} us/req ({(on / off - 1) * 100:+.1f}%)"
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

        in_process(env, args.rounds)
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
            on, off = statistics.median(results["on"]), statistics.median(results["off"])
            rounds = ", ".join(
                f"{a:.0f}/{b:.0f}" for a, b in zip(results["on"], results["off"], strict=True)
            )
            print(
                f"{endpoint:<20} metrics on {on:8.0f} req/s   off {off:8.0f} req/s   "
                f"on/off {on / off:.3f}  (overhead {(1 - on / off) * 100:+.1f}%)"
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
