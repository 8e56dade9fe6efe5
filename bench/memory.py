"""Resident memory of each `serve` worker: after start-up, and after a load like bench/peer.py's.

    PYTHONPATH=src python bench/memory.py                    # 2 workers, 10 s per endpoint
    PYTHONPATH=src python bench/memory.py --seconds 3        # a quick look
    PYTHONPATH=src python bench/memory.py --env MALLOC_ARENA_MAX=2   # try a setting on the workers
    PYTHONPATH=src python bench/memory.py --probe            # + where it goes (malloc, mappings)
    PYTHONPATH=src python bench/memory.py --probe --trace    # + tracemalloc (slow)

It uses its own TK_DATA_DIR (embedded PostgreSQL, --data-dir, kept between runs) seeded once
with the demo set plus 1,000 users and 100,000 tickets, starts `tekudasai serve --workers 2` as
bench/peer.py does (production mode, rate limits off, background jobs on), then runs wrk
(`-t2 -c32`, a warm-up, then the measured run) over peer.py's six requests in its order: the
customer's list, one of her tickets, filing a ticket, the agent search, sign-in, health. VmRSS
of each worker is printed after start-up (ready, no request served), after each endpoint and at
the end; that last figure is the one peer.py reports. First it prints what importing the app
costs in a fresh interpreter (`python -c "import tekudasai.asgi"`).

--probe loads bench/memprobe/sitecustomize.py into the workers and asks each worker for a report
after the load: resident memory by mapping, malloc's in-use and kept-free bytes, threads,
objects by type; --trace adds tracemalloc's top files and lines (PYTHONTRACEMALLOC slows the
workers a lot and costs memory itself: its RSS figures are not comparable). The reports are
printed and kept in --data-dir/probe.

Needs wrk (`apt-get install -y wrk`). On a shared machine the figures move by a few MB between
runs: compare runs made one after the other.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from peer import free_port, log, wrk_script  # bench/ is this script's first import path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "memory-bench-secret-that-is-long-enough-0123456789"
CUSTOMER = ("alice@example.com", "demo-user-1")  # the demo set's customer and admin
ADMIN = ("admin@tekudasai.local", "demo-admin-1")
CUSTOMER_TICKETS = 75


def env_for(args: argparse.Namespace, base: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TK_") and k != "DATABASE_URL"}
    env.update(
        TK_DATA_DIR=str(args.data_dir),
        BETTER_AUTH_SECRET=SECRET,
        BETTER_AUTH_URL=base,
        TK_ENV="production",
        TK_RATE_LIMITS="off",
        TK_BACKUP_INTERVAL="off",
        TK_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT / "src"),
    )
    env.update(dict(item.split("=", 1) for item in args.env))
    return env


def tekudasai(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "tekudasai", *args], env=env, check=True, stdout=subprocess.DEVNULL
    )


def vm_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


def workers_of(pid: int) -> list[int]:
    """The supervisor's worker processes (multiprocessing children running the app)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"multiprocessing" in cmdline and b"resource_tracker" not in cmdline:
                found.append(int(child))
    return sorted(found)


def import_cost(env: dict[str, str]) -> tuple[float, float]:
    """VmRSS of a fresh interpreter before and after importing the ASGI app."""
    code = (
        "import re, pathlib\n"
        "def rss():\n"
        "    s = pathlib.Path('/proc/self/status').read_text()\n"
        "    return int(re.search(r'VmRSS:\\s+(\\d+)', s).group(1)) / 1024\n"
        "before = rss()\n"
        "import tekudasai.asgi\n"
        "print(before, rss())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    ).stdout
    before, after = out.split()
    return float(before), float(after)


def seed(args: argparse.Namespace) -> None:
    marker = args.data_dir / "seeded"
    if marker.exists():
        return
    log("seeding the demo set, 1,000 users and 100,000 tickets (once) …")
    env = env_for(args, "http://127.0.0.1")
    tekudasai(env, "db", "seed", "--demo", "--users", "1000", "--tickets", "100000")
    marker.touch()


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"serve exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/api/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    sys.exit("serve did not get ready")


def sign_in(base: str, who: tuple[str, str]) -> str:
    response = httpx.post(
        f"{base}/api/auth/sign-in/email",
        json={"email": who[0], "password": who[1]},
        headers={"Origin": base},
        timeout=30,
    )
    response.raise_for_status()
    return f"tk.session_token={response.cookies['tk.session_token']}"


def customer_setup(base: str, cookie: str) -> dict[str, Any]:
    """A new ticket's body (the form and answers of her newest ticket), and that ticket's id;
    she files tickets up to CUSTOMER_TICKETS."""
    headers = {"Cookie": cookie, "Origin": base}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        mine = http.get("/api/tickets/my?page=1").json()
        if not mine["data"]:
            sys.exit("the demo customer has no ticket")
        ticket = http.get(f"/api/tickets/my/{mine['data'][0]['id']}").json()["data"]
        body = {"formId": ticket["formId"], "summary": "Printer jams"}
        body["formResponse"] = ticket["formResponse"]
        for _ in range(max(0, CUSTOMER_TICKETS - int(mine["meta"]["pagination"]["total"]))):
            http.post("/api/tickets/my", json=body).raise_for_status()
    return {"id": ticket["id"], "create": body}


def wrk(url: str, script: Path, seconds: int, connections: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "-s", str(script),
         url],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(found.group(1)) if found else float("nan")


def probe_reports(workers: list[int], directory: Path) -> None:
    for pid in workers:
        (directory / f"{pid}.txt").unlink(missing_ok=True)
        os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + 120
    for pid in workers:
        report = directory / f"{pid}.txt"
        while not report.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(0.5)
        print(f"\n--- probe of worker {pid} ---")
        print(report.read_text() if report.exists() else "(no report)")


def main(args: argparse.Namespace) -> None:
    args.data_dir = Path(args.data_dir).resolve()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    seed(args)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = env_for(args, base)
    before, after = import_cost(env)
    print(f"import of the app (fresh interpreter): {before:.0f} MB -> {after:.0f} MB")
    probe_dir = args.data_dir / "probe"
    if args.probe:
        probe_dir.mkdir(exist_ok=True)
        env["PYTHONPATH"] = f"{ROOT / 'bench' / 'memprobe'}:{env['PYTHONPATH']}"
        env["TK_MEMPROBE_DIR"] = str(probe_dir)
        if args.trace:
            env["PYTHONTRACEMALLOC"] = "1"
    serve = subprocess.Popen(
        [sys.executable, "-m", "tekudasai", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(args.workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=None if args.verbose else subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_ready(base, serve)
        time.sleep(2)
        workers = workers_of(serve.pid)

        def show(label: str, rps: float | None = None) -> None:
            figures = ", ".join(f"{vm_rss_mb(pid):.1f}" for pid in workers)
            speed = f"  ({rps:,.0f} req/s)" if rps is not None else ""
            print(f"{label:34} RSS per worker {figures} MB{speed}", flush=True)

        show("after start-up")
        customer, admin = sign_in(base, CUSTOMER), sign_in(base, ADMIN)
        ticket = customer_setup(base, customer)
        mine = {"Cookie": customer, "Origin": base}
        requests = [
            ("GET /api/tickets/my?page=1", "GET", "/api/tickets/my?page=1", mine, None),
            ("GET /api/tickets/my/{id}", "GET", f"/api/tickets/my/{ticket['id']}", mine, None),
            ("POST /api/tickets/my", "POST", "/api/tickets/my", mine, ticket["create"]),
            ("GET /api/tickets?search=printer", "GET", "/api/tickets?search=printer",
             {"Cookie": admin, "Origin": base}, None),
            ("POST /api/auth/sign-in/email", "POST", "/api/auth/sign-in/email", {"Origin": base},
             {"email": CUSTOMER[0], "password": CUSTOMER[1]}),
            ("GET /api/health", "GET", "/api/health", {}, None),
        ]  # fmt: skip
        scripts = Path(tempfile.mkdtemp(prefix="tk-memory-"))
        for name, method, path, headers, body in requests:
            if args.only and not any(word in name for word in args.only):
                continue
            script = wrk_script(scripts, re.sub(r"\W+", "_", name), method, headers, body)
            wrk(base + path, script, args.warmup, args.connections)
            rps = wrk(base + path, script, args.seconds, args.connections)
            show(f"after {name}", rps)
        time.sleep(2)
        show("at the end")
        if args.probe:
            probe_reports(workers, probe_dir)
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=60)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "tk-memory"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for serve")
    parser.add_argument("--only", action="append", default=[], help="endpoints naming this")
    parser.add_argument("--probe", action="store_true", help="report where the memory goes")
    parser.add_argument("--trace", action="store_true", help="--probe with tracemalloc")
    parser.add_argument("--verbose", action="store_true", help="show serve's log")
    main(parser.parse_args())
