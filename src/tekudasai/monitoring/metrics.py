"""Prometheus metrics: HTTP traffic, database queries, the connection pool, errors by code.

Under `tekudasai serve` every worker writes its samples to PROMETHEUS_MULTIPROC_DIR (set by the
launcher before the workers start) and `/metrics` merges all of them; without it (tests, a single
`uvicorn` process) the ordinary in-process registry is used.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import re
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool, QueuePool
from starlette.types import Scope

from tekudasai import __version__
from tekudasai.core.handlers import HTTP_CODES
from tekudasai.db import raw
from tekudasai.db.replica import Replica, ReplicaStatus

slow_log = logging.getLogger("tekudasai.slow_query")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
ERROR_CODE_KEY = "tk.error_code"  # scope key where the error envelope records its code
UNMATCHED_ROUTE = "unmatched"

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

REQUESTS = Counter(
    "tk_http_requests",
    "HTTP requests by method, route template and status",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "tk_http_request_duration_seconds",
    "HTTP request duration by route template",
    ["route"],
    buckets=HTTP_BUCKETS,
)
ERRORS = Counter("tk_errors", "Error responses by error code", ["code"])
QUERY_SECONDS = Histogram(
    "tk_db_query_duration_seconds",
    "Database statement duration by kind",
    ["kind"],
    buckets=DB_BUCKETS,
)
SLOW_QUERIES = Counter("tk_db_slow_queries", "Statements slower than TK_SLOW_QUERY_MS", ["kind"])
# livesum: the service's total over the workers that are alive.
POOL_SIZE = Gauge("tk_db_pool_size", "Configured pool size", multiprocess_mode="livesum")
POOL_CHECKED_OUT = Gauge(
    "tk_db_pool_checked_out", "Connections in use", multiprocess_mode="livesum"
)
POOL_OVERFLOW = Gauge(
    "tk_db_pool_overflow", "Connections opened beyond the pool size", multiprocess_mode="livesum"
)
POOL_CAPACITY = Gauge(
    "tk_db_pool_capacity", "Pool size plus allowed overflow", multiprocess_mode="livesum"
)
POOL_WAITERS = Gauge(
    "tk_db_pool_waiters", "Requests waiting for a connection", multiprocess_mode="livesum"
)

# The read replica (DATABASE_REPLICA_URL): each worker samples it; the worst one is reported.
# Labelled by the replica's address: without DATABASE_REPLICA_URL no series exists at all
# (an unlabelled gauge would report a replica "down" that was never configured).
REPLICA_LAG = Gauge(
    "tk_db_replica_lag_seconds",
    "Seconds the read replica is behind the primary (NaN while it cannot be measured)",
    ["replica"],
    multiprocess_mode="livemax",
)
REPLICA_UP = Gauge(
    "tk_db_replica_up",
    "1 while the read replica takes lag-tolerant reads (reachable, in recovery, within "
    "TK_REPLICA_MAX_LAG_S), else 0",
    ["replica"],
    multiprocess_mode="livemin",
)
ROUTED_READS = Counter(
    "tk_db_routed_reads",
    "Lag-tolerant reads by the server that answered them (replica or primary)",
    ["target"],
)

STATEMENT_KINDS = ("SELECT", "INSERT", "UPDATE", "DELETE")
# Clients may send any method token; unknown ones share one label value.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def collect() -> Iterable[Metric]:
    """Every process's metrics (merged in multiprocess mode), for /metrics and for samplers."""
    path = multiprocess_dir()
    if path is None:
        return REGISTRY.collect()
    forget_dead_workers(path)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    return registry.collect()


def exposition() -> bytes:
    path = multiprocess_dir()
    if path is None:
        return generate_latest(REGISTRY)
    forget_dead_workers(path)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    return generate_latest(registry)


def forget_dead_workers(path: str) -> None:
    """A replaced worker's live gauges (pool) must stop counting; uvicorn does not tell us."""
    for file in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        pid_text = file.rsplit("_", 1)[-1].removesuffix(".db")
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, path)
        except PermissionError:
            pass


# -- HTTP ------------------------------------------------------------------------------------


class RequestMetrics:
    """Counts requests and times them by route template.

    Called by core's RequestContextMiddleware with the status and duration it already
    captures, so `send` is wrapped once per request, not once per concern.
    """

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def __call__(self, scope: Scope, status: int, seconds: float) -> None:
        template = route_template(scope)
        method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
        key = (method, template, status)
        children = self._children.get(key)
        if children is None:
            children = (
                REQUESTS.labels(method, template, str(status)),
                REQUEST_SECONDS.labels(template),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if status >= 400:
            code = scope.get(ERROR_CODE_KEY) or (
                "UNEXPECTED_ERROR" if status == 500 else HTTP_CODES.get(status, "HTTP_ERROR")
            )
            ERRORS.labels(code).inc()


def route_template(scope: Scope) -> str:
    """The matched route's template with its include prefix (`/api/v1/tickets/my/{id}`)."""
    # FastAPI ≥ 0.16x keeps included routes unprefixed and records the effective (prefixed)
    # route in its own scope entry; older versions copy routes with the full path.
    effective = (scope.get("fastapi") or {}).get("effective_route_context")
    template = getattr(effective, "path_format", None)
    if template:
        return str(template)
    route = scope.get("route")
    return getattr(route, "path_format", None) or getattr(route, "path", None) or UNMATCHED_ROUTE


# -- Database ---------------------------------------------------------------------------------

_QUOTED = re.compile(r"'(?:[^']|'')*'")
_DOLLAR_QUOTED = re.compile(r"\$(\w*)\$.*?\$\1\$", re.S)
_NUMBER = re.compile(r"(?<![\w$])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")
_IN_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_SPACE = re.compile(r"\s+")


def normalise_sql(sql: str) -> str:
    """The statement's shape without literals, so logs never carry data and group well."""
    text = _DOLLAR_QUOTED.sub("?", sql)
    text = _QUOTED.sub("?", text)
    text = _NUMBER.sub("?", text)
    text = _IN_LIST.sub("(?, …)", text)
    return _SPACE.sub(" ", text).strip()


def statement_kind(sql: str) -> str:
    head = sql.lstrip()[:6].upper()
    return head if head in STATEMENT_KINDS else "other"


def instrument_engine(engine: AsyncEngine, *, slow_query_ms: int) -> None:
    """Time every statement (histogram by kind, slow ones logged); idempotent per engine."""
    sync_engine = engine.sync_engine
    if getattr(sync_engine, "_tk_instrumented", False):
        return
    sync_engine._tk_instrumented = True  # type: ignore[attr-defined]
    slow_s = slow_query_ms / 1000
    children = {kind: QUERY_SECONDS.labels(kind) for kind in (*STATEMENT_KINDS, "other")}

    def observe(statement: str, seconds: float) -> None:
        kind = statement_kind(statement)
        children[kind].observe(seconds)
        if seconds >= slow_s:
            SLOW_QUERIES.labels(kind).inc()
            slow_log.warning(
                "slow query (%.0f ms): %s",
                seconds * 1000,
                normalise_sql(statement)[:2000],
                extra={"duration_ms": round(seconds * 1000, 1), "kind": kind},
            )

    # The statements sent straight to the driver.
    raw.observer = lambda statement, _values, seconds: observe(statement, seconds)

    # The start time rides on the statement's execution context: one attribute per statement.
    @event.listens_for(sync_engine, "before_cursor_execute")
    def _before(
        conn: Connection, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if context is not None:
            context._tk_started = time.perf_counter()

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _after(
        conn: Connection, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        started = getattr(context, "_tk_started", None)
        if started is not None:
            observe(statement, time.perf_counter() - started)


def instrument_replica(replica: Replica) -> None:
    """Lag and availability gauges from each sample, and a count of where reads went."""
    targets = {target: ROUTED_READS.labels(target) for target in ("replica", "primary")}
    lag, up = REPLICA_LAG.labels(replica.address), REPLICA_UP.labels(replica.address)

    def observe(status: ReplicaStatus) -> None:
        lag.set(status.lag_s if status.lag_s is not None else float("nan"))
        up.set(1 if status.state == "ok" else 0)

    replica.observer = observe
    replica.route_observer = lambda target: targets[target].inc()
    observe(replica.status)


POOL_SAMPLE_INTERVAL_S = 2.0


def start_pool_sampler(engine: AsyncEngine) -> asyncio.Task[None]:
    """Keep this process's pool gauges current (sampled, not per checkout: no request pays)."""

    async def sample() -> None:
        while True:
            update_pool_gauges(engine.sync_engine.pool)
            await asyncio.sleep(POOL_SAMPLE_INTERVAL_S)

    return asyncio.create_task(sample(), name="tk-pool-gauges")


def pool_status(pool: Pool) -> dict[str, int]:
    """Size, in use, overflow, capacity and waiters of a QueuePool (zeros for other pools)."""
    if not isinstance(pool, QueuePool):
        return {"size": 0, "checked_out": 0, "overflow": 0, "capacity": 0, "waiters": 0}
    size = pool.size()
    checked_out = max(0, pool.checkedout())
    overflow = max(0, pool.overflow())
    max_overflow = max(0, pool._max_overflow)
    return {
        "size": size,
        "checked_out": checked_out,
        "overflow": overflow,
        "capacity": size + max_overflow,
        "waiters": _waiters(pool),
    }


def _waiters(pool: Pool) -> int:
    # SQLAlchemy keeps no waiter count; the asyncio queue behind AsyncAdaptedQueuePool does.
    queue = getattr(pool, "_pool", None)
    inner = getattr(queue, "__dict__", {}).get("_queue")
    getters = getattr(inner, "_getters", None) or ()
    return sum(1 for waiter in getters if not waiter.done())


def update_pool_gauges(pool: Pool) -> None:
    status = pool_status(pool)
    POOL_SIZE.set(status["size"])
    POOL_CHECKED_OUT.set(status["checked_out"])
    POOL_OVERFLOW.set(status["overflow"])
    POOL_CAPACITY.set(status["capacity"])
    POOL_WAITERS.set(status["waiters"])


# -- Reading merged samples (samplers and alerts) ------------------------------------------------


def read_samples(names: set[str]) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples of the named series, merged over workers: {sample name: [(labels, value)]}."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for metric in collect():
        for sample in metric.samples:
            if sample.name in names:
                found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


# -- This node ----------------------------------------------------------------------------------


def node_exposition(node: str) -> bytes:
    """`tk_node_info{node=…,version=…} 1`: which node answered this scrape (TK_NODE_NAME).

    Scrape every node itself (not through the load balancer): Prometheus then adds its own
    `instance` label to each series, and this info metric names the node behind an instance."""
    registry = CollectorRegistry()
    info = Gauge(
        "tk_node_info",
        "This node (TK_NODE_NAME) and its version",
        ["node", "version"],
        registry=registry,
    )
    info.labels(node, __version__).set(1)
    return generate_latest(registry)
