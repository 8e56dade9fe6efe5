"""Threshold alerts: evaluated once per period cluster-wide (a periodic job of the queue); a
crossing logs a warning and is POSTed to TK_ALERT_WEBHOOK_URL once, and a recovery message
follows when it clears."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.backup.status import last_backup_at
from tekudasai.config import ConfigError, Settings, parse_duration
from tekudasai.core.schemas import iso
from tekudasai.db.session import Database
from tekudasai.jobs.worker import JobContext
from tekudasai.monitoring import growth, metrics, traffic
from tekudasai.monitoring.models import AlertState, SizeSample

log = logging.getLogger("tekudasai.alerts")

EVALUATE_INTERVAL_S = 60
WEBHOOK_TIMEOUT_S = 5.0
GIB = 1024**3


@dataclass(frozen=True)
class Thresholds:
    pool_saturation: float = 0.9  # share of pool capacity in use
    p99_ms: float = 1000.0
    error_rate: float = 0.05  # share of requests answered 5xx
    min_requests: int = 20  # fewer requests in a sample say nothing about rates
    growth_bytes_per_day: float = 5 * GIB
    backup_age: timedelta | None = None  # None: twice TK_BACKUP_INTERVAL
    traffic_fresh: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None  # None: no data, the alert keeps its state
    threshold: float
    firing: bool
    message: str


@dataclass(frozen=True)
class Transition:
    name: str
    state: str  # "firing" or "resolved"
    check: Check


async def _pool_check(t: Thresholds) -> Check:
    samples = metrics.read_samples({"tk_db_pool_checked_out", "tk_db_pool_capacity"})
    used = sum(v for _, v in samples.get("tk_db_pool_checked_out", []))
    capacity = sum(v for _, v in samples.get("tk_db_pool_capacity", []))
    value = used / capacity if capacity else None
    return Check(
        "pool_saturation",
        value,
        t.pool_saturation,
        value is not None and value >= t.pool_saturation,
        f"database pool {used:.0f}/{capacity:.0f} connections in use",
    )


async def _traffic_checks(db: AsyncSession, t: Thresholds) -> list[Check]:
    sample = await traffic.latest(db)
    fresh = (
        sample is not None
        and sample.sampled_at >= datetime.now(UTC) - t.traffic_fresh
        and sample.requests >= t.min_requests
    )
    p99 = sample.p99_ms if fresh and sample else None
    rate = sample.errors / sample.requests if fresh and sample else None
    return [
        Check(
            "p99_latency",
            p99,
            t.p99_ms,
            p99 is not None and p99 > t.p99_ms,
            f"p99 request latency {p99 or 0:.0f} ms (threshold {t.p99_ms:.0f} ms)",
        ),
        Check(
            "error_rate",
            rate,
            t.error_rate,
            rate is not None and rate > t.error_rate,
            f"{(rate or 0) * 100:.1f}% of requests failed with a server error "
            f"(threshold {t.error_rate * 100:.1f}%)",
        ),
    ]


async def _growth_check(db: AsyncSession, t: Thresholds) -> Check:
    result = await growth.growth_per_day(db)
    value = result.bytes_per_day if result else None
    return Check(
        "database_growth",
        value,
        t.growth_bytes_per_day,
        value is not None and value > t.growth_bytes_per_day,
        f"database grows {(value or 0) / GIB:.2f} GiB/day "
        f"(threshold {t.growth_bytes_per_day / GIB:.2f} GiB/day)",
    )


async def _backup_check(db: AsyncSession, settings: Settings, t: Thresholds) -> Check | None:
    max_age = t.backup_age
    if max_age is None:
        try:
            interval = parse_duration(settings.backup_interval)
        except ConfigError:
            interval = 24 * 3600  # the backup scheduler reports the bad value itself
        if interval is None:
            return None  # scheduled backups are off: nothing to expect
        max_age = timedelta(seconds=2 * interval)
    last = last_backup_at(settings.backups_dir)
    now = datetime.now(UTC)
    if last is None:
        # A new installation has no backup yet; complain once it has run longer than max_age.
        first_seen = await db.scalar(select(func.min(SizeSample.sampled_at)))
        if first_seen is None or now - first_seen < max_age:
            return Check("backup_age", None, max_age.total_seconds(), False, "no backup yet")
        age = now - first_seen
        message = "no successful backup yet"
    else:
        age = now - last
        message = f"last successful backup {age.total_seconds() / 3600:.1f} h ago"
    return Check(
        "backup_age",
        age.total_seconds(),
        max_age.total_seconds(),
        age > max_age,
        f"{message} (threshold {max_age.total_seconds() / 3600:.1f} h)",
    )


async def run_checks(db: AsyncSession, settings: Settings, thresholds: Thresholds) -> list[Check]:
    checks = [
        await _pool_check(thresholds),
        *await _traffic_checks(db, thresholds),
        await _growth_check(db, thresholds),
    ]
    backup = await _backup_check(db, settings, thresholds)
    if backup is not None:
        checks.append(backup)
    return checks


async def evaluate(
    db: AsyncSession, settings: Settings, thresholds: Thresholds | None = None
) -> list[Transition]:
    """Compare the checks with the stored states; store and return what changed."""
    checks = await run_checks(db, settings, thresholds or Thresholds())
    states = {
        s.name: s
        for s in await db.scalars(
            select(AlertState)
            .where(AlertState.name.in_([c.name for c in checks]))
            .with_for_update()
        )
    }
    transitions = []
    for check in checks:
        if check.value is None:
            continue
        state = states.get(check.name)
        was_firing = bool(state and state.firing)
        if check.firing != was_firing:
            transitions.append(
                Transition(check.name, "firing" if check.firing else "resolved", check)
            )
        await db.execute(
            insert(AlertState)
            .values(name=check.name, firing=check.firing, value=check.value, message=check.message)
            .on_conflict_do_update(
                index_elements=[AlertState.name],
                set_={
                    "firing": check.firing,
                    "value": check.value,
                    "message": check.message,
                    "changed_at": func.now()
                    if check.firing != was_firing
                    else AlertState.changed_at,
                },
            )
        )
    await db.flush()
    return transitions


def payload(transition: Transition, settings: Settings) -> dict[str, object]:
    check = transition.check
    verb = "FIRING" if transition.state == "firing" else "RESOLVED"
    return {
        "alert": transition.name,
        "state": transition.state,
        "value": check.value,
        "threshold": check.threshold,
        "message": check.message,
        "summary": f"[{verb}] Te Kudasai {transition.name}: {check.message}",
        "service": settings.base_url,
        "at": iso(datetime.now(UTC)),
    }


async def notify(transitions: list[Transition], settings: Settings) -> None:
    """Log every transition; POST each to the webhook when one is configured."""
    if not transitions:
        return
    bodies = [payload(t, settings) for t in transitions]
    for body in bodies:
        level = logging.WARNING if body["state"] == "firing" else logging.INFO
        log.log(
            level, "%s", body["summary"], extra={"alert": body["alert"], "state": body["state"]}
        )
    if not settings.alert_webhook_url:
        return
    import httpx  # only desks with an alert webhook pay for it (and its command line's imports)

    async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S) as http:
        for body in bodies:
            try:
                response = await http.post(settings.alert_webhook_url, json=body)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                log.error("alert webhook failed for %s: %s", body["alert"], exc)


async def evaluate_and_notify(
    database: Database, settings: Settings, thresholds: Thresholds | None = None
) -> list[Transition]:
    async with database.sessionmaker() as db, db.begin():
        transitions = await evaluate(db, settings, thresholds)
    await notify(transitions, settings)  # after commit: a rolled-back change is never announced
    return transitions


async def current_states(db: AsyncSession) -> list[AlertState]:
    return list(await db.scalars(select(AlertState).order_by(AlertState.name)))


def evaluate_every(_settings: Settings) -> float:
    return float(EVALUATE_INTERVAL_S)


async def evaluate_task(ctx: JobContext) -> None:
    """Periodic: evaluate the thresholds once per period, cluster-wide."""
    await evaluate_and_notify(ctx.database, ctx.settings)
