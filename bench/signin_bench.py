"""Sign-in cost: Argon2id verify p50 on one thread, verifies/s on every core, and sign-ins/s
through the real HTTP API (uvicorn + embedded PostgreSQL) while a probe checks that other
(database-backed) requests still get answered promptly.

    PYTHONPATH=src python bench/signin_bench.py [--seconds 5] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import uvicorn

from tekudasai.accounts import passwords
from tekudasai.accounts import service as accounts_service
from tekudasai.app import create_app
from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.db import migrate
from tekudasai.db.embedded import EmbeddedPostgres
from tekudasai.db.session import Database

PASSWORD = "correct-horse-battery"
SECRET = "bench-secret-that-is-long-enough-0123456789abcdef"


def argon2_figures(samples: int, seconds: float) -> None:
    stored = passwords.hash_password_sync(PASSWORD)
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        assert passwords.verify_password_sync(stored, PASSWORD)
        timings.append((time.perf_counter() - started) * 1000)
    cores = os.cpu_count() or 1
    print(
        f"Argon2id t={passwords.TIME_COST} m={passwords.MEMORY_COST_KIB // 1024} MiB "
        f"p={passwords.PARALLELISM}: verify p50 {statistics.median(timings):.1f} ms, "
        f"p90 {statistics.quantiles(timings, n=10)[-1]:.1f} ms (one thread, {samples} runs)"
    )
    done = 0
    deadline = time.perf_counter() + seconds

    def worker() -> int:
        n = 0
        while time.perf_counter() < deadline:
            passwords.verify_password_sync(stored, PASSWORD)
            n += 1
        return n

    with ThreadPoolExecutor(cores) as pool:
        done = sum(pool.map(lambda _: worker(), range(cores)))
    print(f"verifies/s on {cores} threads: {done / seconds:.1f}")


async def api_figures(seconds: float, concurrency: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="tk-bench-signin-"))
    server = EmbeddedPostgres(root / "pgdata", extra_settings={"fsync": "off"})
    server.ensure_running()
    try:
        url = server.url("postgres")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        settings = Settings(
            BETTER_AUTH_URL=base,
            DATABASE_URL=url,
            TK_DATA_DIR=str(root / "data"),
            BETTER_AUTH_SECRET=SECRET,
            TK_RATE_LIMITS="off",
            TK_BACKGROUND_JOBS="false",
            TK_LOG_LEVEL="WARNING",
        )  # type: ignore[call-arg]
        database = Database.connect(url, settings)
        await migrate.upgrade(database.engine)
        cipher = PiiCipher(settings.master_secret())
        async with database.sessionmaker() as db, db.begin():
            user = await accounts_service.create_user(
                db, cipher, email="bench@example.test", name="Bench", password=PASSWORD
            )
            probe_token, _ = await accounts_service.create_session(db, user_id=user.id)
        probe_auth = {"Authorization": f"Bearer {probe_token}"}
        app = create_app(settings, database)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
        web = uvicorn.Server(config)
        task = asyncio.create_task(web.serve())
        # uvicorn offers no event for this; a short poll is fine here.
        while not web.started:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        latencies: list[float] = []
        probes: list[float] = []
        stop = time.perf_counter() + seconds

        async with httpx.AsyncClient(base_url=base, headers={"Origin": base}, timeout=30) as http:

            async def sign_in_loop() -> None:
                while time.perf_counter() < stop:
                    started = time.perf_counter()
                    response = await http.post(
                        "/api/auth/signin",
                        json={"email": "bench@example.test", "password": PASSWORD},
                    )
                    assert response.status_code == 200, response.text
                    latencies.append((time.perf_counter() - started) * 1000)

            async def probe_loop() -> None:
                while time.perf_counter() < stop:
                    started = time.perf_counter()
                    response = await http.get("/api/auth/session", headers=probe_auth)
                    assert response.status_code == 200 and response.json() is not None
                    probes.append((time.perf_counter() - started) * 1000)
                    await asyncio.sleep(0.05)

            async def failure_p50(email: str) -> float:
                timings = []
                for _ in range(15):
                    started = time.perf_counter()
                    response = await http.post(
                        "/api/auth/signin", json={"email": email, "password": "wrong-password"}
                    )
                    assert response.status_code == 401
                    timings.append((time.perf_counter() - started) * 1000)
                return statistics.median(timings)

            wrong = await failure_p50("bench@example.test")
            unknown = await failure_p50("nobody@example.test")
            print(
                f"failed sign-in p50 (sequential): wrong password {wrong:.1f} ms, "
                f"unknown e-mail {unknown:.1f} ms"
            )
            stop = time.perf_counter() + seconds
            started = time.perf_counter()
            await asyncio.gather(*(sign_in_loop() for _ in range(concurrency)), probe_loop())
            elapsed = time.perf_counter() - started
        web.should_exit = True
        await task
        await database.dispose()
        print(
            f"API sign-in (c={concurrency}, {elapsed:.1f} s): {len(latencies) / elapsed:.1f}/s, "
            f"p50 {statistics.median(latencies):.0f} ms, "
            f"p99 {statistics.quantiles(latencies, n=100)[-1]:.0f} ms"
        )
        print(
            "meanwhile GET /api/auth/session (one DB query): "
            f"p50 {statistics.median(probes):.1f} ms, "
            f"max {max(probes):.1f} ms ({len(probes)} probes)"
        )
    finally:
        server.stop(mode="immediate")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    argon2_figures(args.samples, min(args.seconds, 3.0))
    asyncio.run(api_figures(args.seconds, args.concurrency))


if __name__ == "__main__":
    main()
