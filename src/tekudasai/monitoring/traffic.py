"""Request history: every minute, the requests, server errors and latency quantiles since the
previous sample, taken from the merged Prometheus counters of all workers."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.config import Settings
from tekudasai.jobs.worker import JobContext
from tekudasai.monitoring import metrics
from tekudasai.monitoring.models import TrafficSample

SAMPLE_INTERVAL_S = 60
KEEP_DAYS = 14

_BUCKET = "tk_http_request_duration_seconds_bucket"
_REQUESTS = "tk_http_requests_total"


def current_totals() -> dict[str, Any]:
    """Cumulative request count, 5xx count and latency buckets (all routes) right now."""
    samples = metrics.read_samples({_BUCKET, _REQUESTS})
    buckets: dict[str, float] = {}
    for labels, value in samples.get(_BUCKET, []):
        buckets[labels["le"]] = buckets.get(labels["le"], 0.0) + value
    count = sum(value for _, value in samples.get(_REQUESTS, []))
    errors = sum(
        value for labels, value in samples.get(_REQUESTS, []) if labels["status"].startswith("5")
    )
    return {"count": count, "errors": errors, "buckets": buckets}


def quantile(q: float, buckets: dict[str, float]) -> float | None:
    """histogram_quantile over cumulative buckets {le: count}; seconds, None when empty."""
    bounds = sorted((math.inf if le == "+Inf" else float(le), n) for le, n in buckets.items())
    if not bounds or bounds[-1][1] <= 0:
        return None
    rank = q * bounds[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in bounds:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound is all we know
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def difference(now: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
    """now - before; a counter that went down means the service restarted: take `now` whole."""
    if not before or now["count"] < before.get("count", 0):
        return now
    return {
        "count": now["count"] - before["count"],
        "errors": now["errors"] - before.get("errors", 0),
        "buckets": {
            le: n - before.get("buckets", {}).get(le, 0) for le, n in now["buckets"].items()
        },
    }


async def sample_traffic(db: AsyncSession, totals: dict[str, Any] | None = None) -> TrafficSample:
    """Store the traffic since the previous sample."""
    totals = totals if totals is not None else current_totals()
    previous = await db.scalar(
        select(TrafficSample)
        .order_by(TrafficSample.sampled_at.desc(), TrafficSample.id.desc())
        .limit(1)
    )
    delta = difference(totals, previous.totals if previous else None)

    def ms(q: float) -> float | None:
        value = quantile(q, delta["buckets"])
        return None if value is None else round(value * 1000, 2)

    sample = TrafficSample(
        requests=int(delta["count"]),
        errors=int(delta["errors"]),
        p50_ms=ms(0.5),
        p95_ms=ms(0.95),
        p99_ms=ms(0.99),
        totals=totals,
    )
    db.add(sample)
    await db.execute(
        delete(TrafficSample).where(
            TrafficSample.sampled_at < func.now() - timedelta(days=KEEP_DAYS)
        )
    )
    await db.flush()
    return sample


async def history(
    db: AsyncSession, *, since: timedelta = timedelta(hours=24)
) -> list[TrafficSample]:
    rows = await db.scalars(
        select(TrafficSample)
        .where(TrafficSample.sampled_at >= func.now() - since)
        .order_by(TrafficSample.sampled_at)
    )
    return list(rows)


async def latest(db: AsyncSession) -> TrafficSample | None:
    return await db.scalar(
        select(TrafficSample)
        .order_by(TrafficSample.sampled_at.desc(), TrafficSample.id.desc())
        .limit(1)
    )


def sample_every(_settings: Settings) -> float:
    return float(SAMPLE_INTERVAL_S)


async def sample_task(ctx: JobContext) -> None:
    """Periodic: one traffic sample (the queue runs each period once cluster-wide)."""
    async with ctx.database.sessionmaker() as db, db.begin():
        await sample_traffic(db)
