"""Backup and restore time of a seeded database next to plain pg_dump / pg_restore, same run.

    PYTHONPATH=src python bench/backup_bench.py [--tickets 1000000] [--users 10000] [--rounds 1]

Seeds once into a dedicated TK_DATA_DIR (default /tmp/tk-bench-backup; reused on later runs),
then times, on the embedded PostgreSQL 18:
  plain pg_dump -Fc (gzip 6)  vs  `db backup` logical part (dump at gzip 1 + checksums + manifest)
  (plain pg_dump -Fc -Z gzip:1 is shown too, for the same compression)
  plain pg_restore -j2       vs  `db restore` (checks sha256, restores, verifies checksums, swaps)
and prints each ratio (target: ours <= 1.2x plain).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

from tekudasai.backup.archive import create_backup
from tekudasai.backup.restore import restore_backup
from tekudasai.backup.tools import tool, with_database
from tekudasai.config import Settings
from tekudasai.db.embedded import EmbeddedPostgres
from tekudasai.db.lifecycle import EMBEDDED_DATABASE, ensure_database

SECRET = "bench-secret-that-is-long-enough-for-production-0123456789"


def seed(data_dir: Path, users: int, tickets: int) -> None:
    env = {**os.environ, "TK_DATA_DIR": str(data_dir), "BETTER_AUTH_SECRET": SECRET}
    env.pop("DATABASE_URL", None)
    cmd = [sys.executable, "-m", "tekudasai", "db", "seed", "--demo", "--tickets", str(tickets)]
    subprocess.run([*cmd, "--users", str(users)] if users else cmd, env=env, check=True)


async def count(url: str, table: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"public.{table}"):
            return 0
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await conn.close()


async def sql(url: str, statement: str) -> None:
    conn = await asyncpg.connect(with_database(url, "postgres"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


async def atimed(coro):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = await coro
    return time.perf_counter() - started, result


async def bench(args: argparse.Namespace) -> None:
    data_dir = Path(args.data_dir)
    server = EmbeddedPostgres(data_dir / "pgdata")
    server.ensure_running()
    url = server.url(EMBEDDED_DATABASE)
    await ensure_database(url)
    have = await count(url, "tickets") if (data_dir / "pgdata").exists() else 0
    if have < args.tickets:
        print(f"seeding {args.users} users / {args.tickets} tickets (once) …", flush=True)
        seconds, _ = timed(seed, data_dir, 0 if have else args.users, args.tickets - have)
        print(f"seeded in {seconds:.0f}s")
    print(f"database: {await count(url, 'tickets')} tickets, {await count(url, 'users')} users")
    settings = Settings(TK_DATA_DIR=str(data_dir), BETTER_AUTH_SECRET=SECRET, TK_ENV="test")
    work = Path(tempfile.mkdtemp(prefix="tk-bench-out-", dir=args.work_dir))
    rows = []
    try:
        for round_no in range(args.rounds):
            plain = work / f"plain-{round_no}.dump"
            t_dump, _ = timed(
                subprocess.run,
                [tool("pg_dump"), "-Fc", f"--file={plain}", f"--dbname={url}"],
                check=True,
            )
            fast = work / f"plain-z1-{round_no}.dump"
            t_dump_z1, _ = timed(
                subprocess.run,
                [tool("pg_dump"), "-Fc", "-Z", "gzip:1", f"--file={fast}", f"--dbname={url}"],
                check=True,
            )
            fast.unlink()
            t_backup, backup = await atimed(
                create_backup(
                    url=url, uploads_dir=settings.uploads_dir, out=work / f"ours-{round_no}"
                )
            )
            scratch_plain = with_database(url, "bench_plain_restore")
            await sql(url, "DROP DATABASE IF EXISTS bench_plain_restore")
            await sql(url, "CREATE DATABASE bench_plain_restore")
            t_restore_plain, _ = timed(
                subprocess.run,
                [
                    tool("pg_restore"),
                    "-j",
                    "2",
                    "--no-owner",
                    f"--dbname={scratch_plain}",
                    str(plain),
                ],
                check=True,
            )
            await sql(url, "DROP DATABASE bench_plain_restore")
            await sql(url, "DROP DATABASE IF EXISTS bench_ours_restore")
            t_restore, _ = await atimed(
                restore_backup(
                    path=backup.path,
                    target_url=with_database(url, "bench_ours_restore"),
                    settings=settings,
                    uploads_dir=work / f"uploads-{round_no}",
                    confirm=lambda _q: True,
                )
            )
            await sql(url, "DROP DATABASE bench_ours_restore")
            size_plain = plain.stat().st_size / 1e6
            size_ours = sum(p.stat().st_size for p in backup.path.iterdir()) / 1e6
            rows.append(
                (t_dump, t_dump_z1, t_backup, t_restore_plain, t_restore, size_plain, size_ours)
            )
            plain.unlink()
            shutil.rmtree(backup.path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(
        f"{'round':<6}{'pg_dump':>9}{'-Z1':>8}{'backup':>9}{'ratio':>7}{'ratio-Z1':>9}"
        f"{'pg_restore':>12}{'restore':>9}{'ratio':>7}"
    )
    for index, (d, dz, b, rp, r, _sp, _so) in enumerate(rows, 1):
        print(
            f"{index:<6}{d:>8.1f}s{dz:>7.1f}s{b:>8.1f}s{b / d:>6.2f}x{b / dz:>8.2f}x"
            f"{rp:>11.1f}s{r:>8.1f}s{r / rp:>6.2f}x"
        )
    if len(rows) > 1:
        med = [statistics.median(col) for col in zip(*rows, strict=True)]
        print(
            f"median backup/pg_dump {med[2] / med[0]:.2f}x (vs -Z1 {med[2] / med[1]:.2f}x),"
            f" restore/pg_restore {med[4] / med[3]:.2f}x"
        )
    print(
        f"sizes: plain pg_dump {rows[-1][5]:.0f} MB (gzip 6), backup directory {rows[-1][6]:.0f} MB"
        " (dump at gzip 1 + uploads tar + manifest)"
    )
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (2 cores, shared)")
    if args.stop:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "tk-bench-backup"))
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--stop", action="store_true", help="stop the embedded server afterwards")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
