"""Uploads of a 10 MiB file and their downloads through a real `tekudasai serve --workers 1`:
local disk vs an S3 server (moto's, in its own process on loopback). Prints throughput and the
worker's resident memory (baseline after a warm-up, peak while uploading, peak while downloading).

    PYTHONPATH=src python bench/uploads_bench.py [--rounds 8] [--concurrency 2] [--size-mb 10]

Everything shares the same cores (client, server, PostgreSQL, moto): compare the two stores
within one run, not with other machines. moto keeps objects in memory and is slower than a real
store; the S3 figures are an upper bound on the store-side cost of going over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psutil

from tekudasai.db.embedded import EmbeddedPostgres

SECRET = "bench-secret-that-is-long-enough-0123456789abcdef"
BOUNDARY = "tk-bench-boundary"
BLOCK = 64 * 1024
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}
SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


@contextlib.contextmanager
def moto_server(root: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=(root / "moto.log").open("wb"),
        env={**os.environ, **CREDENTIALS},
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{endpoint}/moto-api/")
        httpx.put(f"{endpoint}/tk-bench", timeout=10).raise_for_status()  # create the bucket
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def serve(root: Path, database_url: str, **extra: str) -> Iterator[tuple[str, psutil.Process]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TK_", "DATABASE_URL"))}
    env.update(
        PYTHONPATH=str(SRC),
        DATABASE_URL=database_url,
        TK_DATA_DIR=str(root / "data"),
        BETTER_AUTH_SECRET=SECRET,
        TK_RATE_LIMITS="off",
        TK_BACKGROUND_JOBS="false",
        TK_LOG_LEVEL="WARNING",
        **CREDENTIALS,
        **extra,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "tekudasai", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(root / "serve.log").open("wb"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/api/health/ready")
        workers = [
            p
            for p in psutil.Process(process.pid).children(recursive=True)
            if "resource_tracker" not in " ".join(p.cmdline())
        ]
        yield base, max(workers, key=lambda p: p.memory_info().rss)
    finally:
        process.terminate()
        process.wait(timeout=60)


class PeakRss:
    """Samples a process's RSS every 10 ms in a thread; `peak` since the last `reset`."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.01)

    def reset(self) -> int:
        self.peak = now = self.process.memory_info().rss
        return now

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


async def body(size: int, seed: int) -> AsyncIterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="f{seed}.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    line = f"bench file {seed} ".encode()
    block = (line * (BLOCK // len(line) + 1))[: BLOCK - 1] + b"\n"
    for _ in range(size // BLOCK):
        yield block
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def run_store(
    label: str, base: str, worker: psutil.Process, args: argparse.Namespace
) -> None:
    size = args.size_mb * 1024 * 1024
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        signed = await http.post(
            "/api/auth/signup",
            json={
                "name": "Bench",
                "email": f"bench-{label}@example.test",
                "password": "a-long-password",
            },
        )
        signed.raise_for_status()
        headers = {
            "Authorization": f"Bearer {signed.json()['token']}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        }

        async def upload(n: int) -> str:
            response = await http.post("/api/uploads", content=body(size, n), headers=headers)
            response.raise_for_status()
            return str(response.json()["data"]["url"])

        async def download(url: str) -> int:
            got = 0
            async with http.stream(
                "GET", url, headers={"Authorization": headers["Authorization"]}
            ) as r:
                r.raise_for_status()
                async for chunk in r.aiter_bytes():
                    got += len(chunk)
            return got

        async def phase(coros: list) -> tuple[float, list]:  # type: ignore[type-arg]
            semaphore = asyncio.Semaphore(args.concurrency)

            async def limited(coro):  # type: ignore[no-untyped-def]
                async with semaphore:
                    return await coro

            started = time.perf_counter()
            results = await asyncio.gather(*(limited(c) for c in coros))
            return time.perf_counter() - started, results

        await download(await upload(-1))  # warm-up: imports, pools, first allocations
        rss = PeakRss(worker)
        baseline = rss.reset()
        up_s, urls = await phase([upload(n) for n in range(args.rounds)])
        up_peak = rss.peak
        rss.reset()
        down_s, sizes = await phase([download(u) for u in urls])
        down_peak = rss.peak
        rss.stop()
        assert all(s == size for s in sizes), sizes
    mib = args.rounds * args.size_mb
    print(
        f"{label:<6} upload   {args.rounds / up_s:6.1f} files/s {mib / up_s:7.1f} MiB/s"
        f"   peak RSS {up_peak / 2**20:6.1f} MiB (+{(up_peak - baseline) / 2**20:.1f})"
    )
    print(
        f"{label:<6} download {args.rounds / down_s:6.1f} files/s {mib / down_s:7.1f} MiB/s"
        f"   peak RSS {down_peak / 2**20:6.1f} MiB (+{(down_peak - baseline) / 2**20:.1f})"
        f"   baseline {baseline / 2**20:.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=8, help="files per phase")
    parser.add_argument("--concurrency", type=int, default=2, help="requests at once")
    parser.add_argument("--size-mb", type=int, default=10, help="file size (at most 10)")
    parser.add_argument("--only", choices=["local", "s3"], help="one store only")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tk-bench-uploads-"))
    database = EmbeddedPostgres(root / "pgdata", extra_settings={"fsync": "off"})
    database.ensure_running()
    try:
        url = database.url("postgres")
        print(
            f"{args.rounds} x {args.size_mb} MiB, {args.concurrency} at a time,"
            " serve --workers 1 (RSS: the worker process)"
        )
        if args.only in (None, "local"):
            (root / "local").mkdir()
            with serve(root / "local", url) as (base, worker):
                asyncio.run(run_store("local", base, worker, args))
        if args.only in (None, "s3"):
            (root / "s3").mkdir()
            with moto_server(root) as endpoint:
                uploads_url = f"s3://tk-bench/uploads?endpoint={endpoint}"
                with serve(root / "s3", url, TK_UPLOADS_URL=uploads_url) as (base, worker):
                    asyncio.run(run_store("s3", base, worker, args))
    finally:
        database.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
