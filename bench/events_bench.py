"""GET /api/events on one node: memory per connection, CPU at idle, and the delay from a
change to every client seeing it (p50/p99); plus what open streams cost the request that
causes the change.

    PYTHONPATH=src python bench/events_bench.py --clients 500
    PYTHONPATH=src python bench/events_bench.py --clients 50 --idle 3 --changes 10   # quick check
    PYTHONPATH=src python bench/events_bench.py --idle 3 --rounds 7   # the causing request, 7 times
    PYTHONPATH=src python bench/events_bench.py --paired 300   # the same, request by request

One `tekudasai serve --workers 1` (a real server on loopback) against an embedded PostgreSQL
in --data-dir. The clients are plain asyncio connections (an EventSource's work: read
lines), all signed in as agents so every change reaches every client, in a process of their
own: in this one, the causing request's answer waited behind their 500 reads and was
counted as the server's.

- memory: the worker's RSS after the clients connected minus before, divided by the clients
  (the first connections also warm caches: read it with enough clients, 500);
- CPU at idle: the worker's CPU time (user + system) over --idle seconds with every client
  connected and nothing happening (heartbeats included when --heartbeat is short);
- delay: for each change (an agent's comment through the API), from the moment its POST
  returned (the change committed before that) to each client's receipt of the event: p50 and
  p99 over all (client, change) pairs, and of the slowest client per change;
- CPU per change: the worker's and the clients' CPU time over the paced phase, per change
  (the worker's is the request plus the fan-out: the most stable figure on a busy machine);
- causing request: POST comment ms (median), as the client sees it and inside the worker (its
  access-log time, by X-Request-ID), with every client connected against the same with no
  stream: back to back (each request competes with the fan-out of the one before, on the
  same cores) and paced (the next request --pause after every client got the last event;
  compared with paced requests without streams, before and after, since a request after a
  pause finds cold caches and idle cores whatever the streams).
- --py-spy FILE: a py-spy profile (raw) of the worker over the paced phase.

The server, PostgreSQL and the clients share this machine's cores: compare figures within
one run, and run it several times.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SECRET = "bench-secret-that-is-long-enough-0123456789abcdef"
DATABASE = "tk_events_bench"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def worker_pids(serve_pid: int) -> list[int]:
    """The serve supervisor's children that are workers (not multiprocessing's helpers)."""
    children: list[int] = []
    for task in Path(f"/proc/{serve_pid}/task").iterdir():
        with contextlib.suppress(OSError):
            children += [int(p) for p in (task / "children").read_text().split()]
    return [
        pid
        for pid in children
        if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def prepare(url: str, data_dir: Path) -> dict[str, Any]:
    """Session tokens of an agent, a customer and a neighbour (another customer), and a
    form."""
    from tekudasai.accounts import service as accounts_service
    from tekudasai.config import Settings
    from tekudasai.core.crypto import PiiCipher
    from tekudasai.db.session import Database
    from tekudasai.forms import service as forms_service

    settings = Settings(DATABASE_URL=url, TK_DATA_DIR=str(data_dir), BETTER_AUTH_SECRET=SECRET)
    cipher = PiiCipher(settings.master_secret())
    database = Database.connect(url, settings, pool_size=1)
    stamp = int(time.time() * 1000)
    tokens: dict[str, Any] = {}
    async with database.sessionmaker() as db, db.begin():
        for who, role in (("agent", "agent"), ("customer", "user"), ("neighbour", "user")):
            user = await accounts_service.create_user(
                db,
                cipher,
                email=f"bench-{who}-{stamp}@example.test",
                name=f"Bench {who.title()}",
                password="bench-password-123",
                role=role,
                email_verified=True,
            )
            tokens[who], _ = await accounts_service.create_session(db, user_id=user.id)
            if who == "agent":
                form = await forms_service.create_form(
                    db,
                    creator_id=user.id,
                    name="Bench form",
                    description="",
                    disabled=False,
                    elements=[
                        {"type": "text-field", "name": "what", "label": "What", "required": True}
                    ],
                )
    await database.dispose()
    return {**tokens, "form_id": form["id"]}


class Client:
    """One stream: records when each event id arrived."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.connected = asyncio.Event()
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.on_event: Callable[[int], None] | None = None

    async def run(self, port: int, token: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        try:
            while line := await reader.readline():
                if line.startswith(b": connected"):
                    self.connected.set()
                elif line.startswith(b"id: "):
                    event_id = int(line[4:])
                    self.arrived[event_id] = time.perf_counter()
                    self.changed.set()
                    if self.on_event is not None:
                        self.on_event(event_id)
        finally:
            writer.close()


async def clients_main(port: int, token: str, count: int) -> None:
    """The clients' own process (`--clients-child`): their reading must not share an event
    loop with the causing requests, whose answers would otherwise wait behind 500 reads.

    Protocol on stdout: `connected`, then `got ID` once every client has event ID; on
    `dump` (stdin) one JSON line {id: [arrival per client]} and exit. perf_counter is
    CLOCK_MONOTONIC, comparable between processes."""
    clients = [Client() for _ in range(count)]
    for client in clients:
        client.task = asyncio.create_task(client.run(port, token))
    async with asyncio.timeout(120):
        for client in clients:
            await client.connected.wait()
    print("connected", flush=True)
    stdin = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    reported: list[int] = []
    counts: dict[int, int] = {}

    def arrived(event_id: int) -> None:  # O(1) per arrival: no polling of 500 clients
        counts[event_id] = counts.get(event_id, 0) + 1
        if counts[event_id] == count:
            reported.append(event_id)
            print(f"got {event_id}", flush=True)

    for client in clients:
        client.on_event = arrived
    await stdin.readline()  # "dump"
    arrivals = {i: [c.arrived[i] for c in clients] for i in reported}
    print(json.dumps(arrivals), flush=True)
    for client in clients:
        assert client.task is not None
        client.task.cancel()
    await asyncio.gather(*(c.task for c in clients if c.task), return_exceptions=True)


async def request_ms(
    http: Any, path: str, body: dict[str, Any], headers: dict[str, str], request_id: str
) -> float:
    started = time.perf_counter()
    response = await http.post(path, json=body, headers={**headers, "X-Request-ID": request_id})
    assert response.status_code == 200, response.text[:300]
    return (time.perf_counter() - started) * 1000


def server_ms(log: Path) -> dict[str, float]:
    """Each request's time inside the server worker (its access-log line), by request id:
    what the server spent, without the client's side of the round trip."""
    times: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            entry = json.loads(line)
            if entry.get("logger") == "tekudasai.access":
                times[entry["request_id"]] = float(entry["message"].rsplit(" ", 1)[1][:-2])
    return times


async def run(args: argparse.Namespace, url: str, serve_pid: int, port: int, log: Path) -> None:
    import httpx

    who = await prepare(url, args.data_dir)
    agent = {"Authorization": f"Bearer {who['agent']}"}
    customer = {"Authorization": f"Bearer {who['customer']}"}
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        filed = await http.post(
            "/api/tickets/my",
            json={"formId": who["form_id"], "summary": "Bench", "formResponse": {"what": "x"}},
            headers=customer,
        )
        assert filed.status_code == 200, filed.text
        ticket = filed.json()["data"]["id"]
        path = f"/api/tickets/{ticket}/comments"

        def body(n: int) -> dict[str, Any]:
            return {"body": f"Bench reply {n}", "internal": False}

        async def phase(name: str, count: int, pause: float = 0.0) -> list[float]:
            times = []
            for n in range(count):
                times.append(await request_ms(http, path, body(n), agent, f"{name}-{n}"))
                await asyncio.sleep(pause)
            return times

        async def connect_clients() -> asyncio.subprocess.Process:
            return await start_clients(port, who["agent"], args.clients)

        await phase("warm", 20)
        alone = await phase("before", args.requests)
        # Paced like the phase with streams, to compare like with like: after a pause the
        # next request finds cold caches and idle cores, streams or not.
        alone_paced = await phase("alone-paced", args.changes, args.pause)

        workers = worker_pids(serve_pid)
        assert len(workers) == 1, workers
        worker = workers[0]
        rss_before = rss_kb(worker)
        child = await connect_clients()
        assert child.stdout is not None and child.stdin is not None
        await asyncio.sleep(1)
        rss_after = rss_kb(worker)

        cpu_start, wall_start = cpu_seconds(worker), time.perf_counter()
        await asyncio.sleep(args.idle)
        idle_cpu = (cpu_seconds(worker) - cpu_start) / (time.perf_counter() - wall_start)

        committed_at: dict[int, float] = {}
        paced: list[float] = []
        spy = None
        if args.py_spy:
            spy = await asyncio.create_subprocess_exec(
                *("py-spy", "record", "-p", str(worker), "-r", "500", "-f", "raw"),
                *("-o", str(args.py_spy), "--nonblocking"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        worker_cpu, clients_cpu = cpu_seconds(worker), cpu_seconds(child.pid)
        for n in range(args.changes):
            started = time.perf_counter()
            response = await http.post(
                path, json=body(10_000 + n), headers={**agent, "X-Request-ID": f"paced-{n}"}
            )
            committed = time.perf_counter()  # the change committed before its answer
            paced.append((committed - started) * 1000)
            assert response.status_code == 200, response.text
            async with asyncio.timeout(30):
                line = (await child.stdout.readline()).split()
            assert line[0] == b"got", line
            committed_at[int(line[1])] = committed
            await asyncio.sleep(args.pause)
        worker_cpu = cpu_seconds(worker) - worker_cpu
        clients_cpu = cpu_seconds(child.pid) - clients_cpu
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            await spy.wait()

        connected = await phase("b2b", args.requests)
        await asyncio.sleep(1)  # the last fan-outs
        child.stdin.write(b"dump\n")
        await child.stdin.drain()
        while (line := await child.stdout.readline()).startswith(b"got"):
            pass  # the back-to-back phase's events
        arrivals = json.loads(line)
        await child.wait()
        await asyncio.sleep(1)
        alone_paced += await phase("alone-paced-after", args.changes, args.pause)
        # Again without streams: drift (a longer conversation, a warmer cache, the machine)
        # shows as a difference between the two "alone" figures.
        after = await phase("after", args.requests)

        async def paced_with_streams(name: str) -> None:
            """--changes paced requests with --clients streams open (a fresh clients child)."""
            clients = await connect_clients()
            assert clients.stdout is not None and clients.stdin is not None
            await asyncio.sleep(1)
            for n in range(args.changes):
                request_id = f"{name}-{n}"
                await request_ms(http, path, body(20_000 + n), agent, request_id)
                async with asyncio.timeout(30):
                    assert (await clients.stdout.readline()).startswith(b"got")
                await asyncio.sleep(args.pause)
            clients.stdin.write(b"dump\n")
            await clients.stdin.drain()
            await clients.stdout.read()
            await clients.wait()
            await asyncio.sleep(1)

        # More rounds, each a paced phase without streams, then one with them: the machine's
        # drift over a run moved the single comparison above by more than the effect.
        for r in range(1, args.rounds):
            await phase(f"round{r}-alone", args.changes, args.pause)
            await paced_with_streams(f"round{r}-streams")

    delays: list[float] = []
    slowest: list[float] = []
    for event_id, committed in committed_at.items():
        per_client = [(at - committed) * 1000 for at in arrivals[str(event_id)]]
        delays += per_client
        slowest.append(max(per_client))
    inside = server_ms(log)

    def inside_median(name: str) -> float:
        return statistics.median(v for k, v in inside.items() if k.startswith(name + "-"))

    print(f"clients:                  {args.clients} on one worker (clients in their own process)")
    print(f"memory per connection:    {(rss_after - rss_before) / args.clients:.1f} KiB")
    print(f"  worker RSS:             {rss_before / 1024:.1f} MiB -> {rss_after / 1024:.1f} MiB")
    print(f"CPU at idle:              {idle_cpu * 100:.2f} % of one core over {args.idle:.0f} s")
    print(
        f"delay change -> client:   p50 {percentile(delays, 50):.1f} ms, "
        f"p99 {percentile(delays, 99):.1f} ms ({len(delays)} deliveries)"
    )
    print(
        f"  slowest client/change:  p50 {percentile(slowest, 50):.1f} ms, "
        f"p99 {percentile(slowest, 99):.1f} ms ({len(slowest)} changes)"
    )
    print(
        f"CPU per change (paced):   worker {worker_cpu / args.changes * 1000:.1f} ms "
        f"(the request and the fan-out), clients {clients_cpu / args.changes * 1000:.1f} ms"
    )
    base_ms = (statistics.median(alone) + statistics.median(after)) / 2
    base_in = (inside_median("before") + inside_median("after")) / 2
    print("causing request (POST comment), median; client's round trip / inside the worker:")
    print(
        f"  back to back, no stream:  {base_ms:.2f} / {base_in:.2f} ms "
        f"(before {statistics.median(alone):.2f}, after {statistics.median(after):.2f})"
    )
    rows = (
        ("back to back", connected, "b2b", base_ms, base_in),
        ("paced", paced, "paced", statistics.median(alone_paced), inside_median("alone-paced")),
    )
    for label, runs, name, ref, ref_in in rows:
        if label == "paced":
            print(f"  paced, no stream:         {ref:.2f} / {ref_in:.2f} ms")
        ms, inner = statistics.median(runs), inside_median(name)
        print(
            f"  {label}, {args.clients} streams:{' ' * (13 - len(label))}{ms:.2f} / {inner:.2f} ms "
            f"({(ms / ref - 1) * 100:+.1f} % / {(inner / ref_in - 1) * 100:+.1f} % "
            "against no stream)"
        )
    print(
        "  back to back: each request competes with the previous change's fan-out; paced:"
        f" the next one starts {args.pause * 1000:.0f} ms after every client has the last event"
    )
    if args.rounds > 1:
        # Round 0 is the run above; each round compares medians taken minutes apart at most.
        ratios = [inside_median("paced") / inside_median("alone-paced")]
        for r in range(1, args.rounds):
            ratios.append(inside_median(f"round{r}-streams") / inside_median(f"round{r}-alone"))
        shown = ", ".join(f"{(x - 1) * 100:+.1f} %" for x in ratios)
        print(
            f"  paced, inside the worker, {args.rounds} rounds (streams against none): {shown}; "
            f"median {(statistics.median(ratios) - 1) * 100:+.1f} %"
        )


async def start_clients(port: int, token: str, count: int) -> asyncio.subprocess.Process:
    """The clients' process (`--clients-child`), once all of its streams are connected."""
    clients = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--clients-child",
        f"{port}:{token}:{count}",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        limit=2**26,
    )
    assert clients.stdout is not None
    async with asyncio.timeout(120):
        assert (await clients.stdout.readline()).strip() == b"connected"
    return clients


def bootstrap_median(values: list[float], rounds: int = 2000) -> tuple[float, float]:
    """A 95 % interval for the median of `values` (percentile bootstrap, fixed seed)."""
    rng = random.Random(18)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(rounds))
    return medians[int(rounds * 0.025)], medians[int(rounds * 0.975) - 1]


async def run_paired(
    args: argparse.Namespace, url: str, serve_pid: int, port: int, log: Path
) -> None:
    """--paired N: the causing request with and without a fan-out, interleaved request by
    request, so that the machine's drift (40 % within a run, more than the effect) cancels.

    Every stream is one customer's (--clients of them). Each pair is two paced agent replies
    in random order: one on that customer's ticket, which every stream receives ("seen"),
    one on a neighbour's ticket, which no stream receives ("unseen": the hub's index finds
    nobody to offer it to). Both requests are alike in every other respect, and both run with
    the streams connected, the hub reading each event from the database."""
    import httpx

    who = await prepare(url, args.data_dir)
    agent = {"Authorization": f"Bearer {who['agent']}"}
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(args.paired)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        tickets = {}
        for arm, owner in (("seen", "customer"), ("unseen", "neighbour")):
            filed = await http.post(
                "/api/tickets/my",
                json={"formId": who["form_id"], "summary": "Bench", "formResponse": {"what": "x"}},
                headers={"Authorization": f"Bearer {who[owner]}"},
            )
            assert filed.status_code == 200, filed.text
            tickets[arm] = f"/api/tickets/{filed.json()['data']['id']}/comments"
        clients = await start_clients(port, who["customer"], args.clients)
        assert clients.stdout is not None and clients.stdin is not None
        await asyncio.sleep(1)

        round_trip: dict[str, float] = {}
        delays: list[float] = []

        async def reply(arm: str, request_id: str) -> None:
            body = {"body": f"Bench reply {request_id}", "internal": False}
            started = time.perf_counter()
            round_trip[request_id] = await request_ms(http, tickets[arm], body, agent, request_id)
            if arm == "seen":  # the next request waits until every stream has this event
                async with asyncio.timeout(30):
                    line = (await clients.stdout.readline()).split()
                assert line[0] == b"got", line
                delays.append((time.perf_counter() - started) * 1000 - round_trip[request_id])
            await asyncio.sleep(args.pause)

        for n in range(10):  # warm both paths
            await reply("seen", f"warm-seen-{n}")
            await reply("unseen", f"warm-unseen-{n}")
        for n in range(args.paired):
            arms = ["seen", "unseen"]
            rng.shuffle(arms)
            for arm in arms:
                await reply(arm, f"pair-{arm}-{n}")
        clients.stdin.write(b"dump\n")
        await clients.stdin.drain()
        await clients.stdout.read()
        await clients.wait()

    inside = server_ms(log)
    print(
        f"paired: {args.paired} pairs, {args.clients} streams of one customer, "
        f"{args.pause * 1000:.0f} ms pause after each request (after every stream has its event)"
    )
    print(
        f"  the last of the streams got the event, after the reply's answer: p50 "
        f"{percentile(delays, 50):.1f} ms, p99 {percentile(delays, 99):.1f} ms"
    )
    for label, times in (("inside the worker", inside), ("client's round trip", round_trip)):
        seen = [times[f"pair-seen-{n}"] for n in range(args.paired)]
        unseen = [times[f"pair-unseen-{n}"] for n in range(args.paired)]
        ratios = [a / b for a, b in zip(seen, unseen, strict=True)]
        low, high = bootstrap_median(ratios)
        effect = (statistics.median(ratios) - 1) * 100
        print(
            f"  {label}: seen by {args.clients} {statistics.median(seen):.2f} ms, "
            f"by none {statistics.median(unseen):.2f} ms; per pair {effect:+.1f} % "
            f"(95 % interval {(low - 1) * 100:+.1f} .. {(high - 1) * 100:+.1f} %)"
        )


def main(args: argparse.Namespace) -> None:
    import asyncpg

    from tekudasai.db.embedded import EmbeddedPostgres

    args.data_dir.mkdir(parents=True, exist_ok=True)
    server = EmbeddedPostgres(args.data_dir / "pgdata")
    server.ensure_running()
    process: subprocess.Popen[bytes] | None = None
    try:

        async def create_database() -> None:
            conn = await asyncpg.connect(server.url("postgres"))
            try:
                if not await conn.fetchval(
                    "SELECT 1 FROM pg_database WHERE datname = $1", DATABASE
                ):
                    await conn.execute(f'CREATE DATABASE "{DATABASE}"')
            finally:
                await conn.close()

        asyncio.run(create_database())
        url = server.url(DATABASE)
        log = args.data_dir / "serve.log"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TK_", "DATABASE_URL"))}
        env.update(
            DATABASE_URL=url,
            TK_DATA_DIR=str(args.data_dir),
            BETTER_AUTH_SECRET=SECRET,
            TK_RATE_LIMITS="off",
            TK_BACKGROUND_JOBS="false",
            TK_LOG_LEVEL="INFO",  # the access log: each request's time in the worker
            TK_LOG_FORMAT="json",
            TK_LIVE_HEARTBEAT_S=str(args.heartbeat),
            PYTHONPATH=str(ROOT / "src"),
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "tekudasai", "serve", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/api/health/ready").status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise SystemExit("the server did not start")
        time.sleep(1)  # the worker's LISTEN connection
        runner = run_paired if args.paired else run
        asyncio.run(runner(args, url, process.pid, port, log))
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=60)
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "tk-events-bench"
    )
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU sampling")
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between changes")
    parser.add_argument("--requests", type=int, default=100, help="causing requests per phase")
    parser.add_argument("--heartbeat", type=float, default=25.0)
    parser.add_argument(
        "--rounds", type=int, default=1, help="paced phases without, then with streams, alternating"
    )
    parser.add_argument(
        "--paired",
        type=int,
        default=0,
        help="only this many interleaved pairs: a change every stream sees against one none sees",
    )
    parser.add_argument(
        "--py-spy", type=Path, default=None, help="profile the worker while paced (raw output)"
    )
    parser.add_argument("--clients-child", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.clients_child:
        port, token, count = parsed.clients_child.split(":")
        asyncio.run(clients_main(int(port), token, int(count)))
    else:
        main(parsed)
