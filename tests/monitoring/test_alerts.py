"""Alerts fire once while a threshold is crossed, then recover; the webhook is a real HTTP
server on loopback."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tekudasai.config import Settings
from tekudasai.core.schemas import iso
from tekudasai.db.session import Database
from tekudasai.monitoring import alerts
from tekudasai.monitoring.models import AlertState, SizeSample, TrafficSample
from tests.conftest import make_settings
from tests.monitoring.conftest import Receiver, write_backup_manifest

# Only the condition under test may fire: the others are set out of reach.
QUIET = alerts.Thresholds(
    pool_saturation=2.0, p99_ms=1e9, error_rate=2.0, growth_bytes_per_day=1e18
)


def write_backup(settings: Settings, name: str, created_at: datetime) -> None:
    folder = write_backup_manifest(settings.backups_dir, name, iso(created_at))
    (folder / "dump.bin").write_bytes(b"x" * 100)


@pytest.fixture
def hooked(db_url: str, tmp_path: Path, receiver: Receiver) -> Settings:
    return make_settings(
        db_url, tmp_path / "data", TK_ALERT_WEBHOOK_URL=receiver.url, TK_BACKUP_INTERVAL="24h"
    )


async def test_backup_age_alert_fires_once_then_recovers(
    hooked: Settings,
    database: Database,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tekudasai.alerts")
    write_backup(hooked, "old", datetime.now(UTC) - timedelta(days=3))

    first = await alerts.evaluate_and_notify(database, hooked, QUIET)
    assert [(t.name, t.state) for t in first] == [("backup_age", "firing")]
    second = await alerts.evaluate_and_notify(database, hooked, QUIET)
    assert second == []  # still crossed: no repeat
    assert len(receiver.bodies) == 1
    body = receiver.bodies[0]
    assert body["alert"] == "backup_age" and body["state"] == "firing"
    assert body["value"] > body["threshold"] == 48 * 3600
    assert "last successful backup 72.0 h ago" in body["message"]
    assert any(
        r.levelno == logging.WARNING and "[FIRING]" in r.getMessage() for r in caplog.records
    )

    write_backup(hooked, "fresh", datetime.now(UTC) - timedelta(minutes=5))
    third = await alerts.evaluate_and_notify(database, hooked, QUIET)
    assert [(t.name, t.state) for t in third] == [("backup_age", "resolved")]
    assert await alerts.evaluate_and_notify(database, hooked, QUIET) == []
    assert [b["state"] for b in receiver.bodies] == ["firing", "resolved"]
    async with database.sessionmaker() as db:
        state = await db.scalar(select(AlertState).where(AlertState.name == "backup_age"))
    assert state is not None and state.firing is False


async def test_error_rate_and_latency_alerts_from_traffic_samples(
    hooked: Settings, database: Database, receiver: Receiver
) -> None:
    thresholds = alerts.Thresholds(
        pool_saturation=2.0, growth_bytes_per_day=1e18, p99_ms=500, error_rate=0.05
    )
    async with database.sessionmaker() as db, db.begin():
        db.add(TrafficSample(requests=200, errors=30, p50_ms=20, p95_ms=300, p99_ms=900, totals={}))
    fired = await alerts.evaluate_and_notify(database, hooked, thresholds)
    assert {(t.name, t.state) for t in fired} >= {
        ("error_rate", "firing"),
        ("p99_latency", "firing"),
    }
    async with database.sessionmaker() as db, db.begin():
        db.add(TrafficSample(requests=200, errors=0, p50_ms=5, p95_ms=9, p99_ms=12, totals={}))
    recovered = await alerts.evaluate_and_notify(database, hooked, thresholds)
    assert {(t.name, t.state) for t in recovered} == {
        ("error_rate", "resolved"),
        ("p99_latency", "resolved"),
    }
    states = [(b["alert"], b["state"]) for b in receiver.bodies if b["alert"] != "backup_age"]
    assert sorted(states) == sorted(
        [
            ("error_rate", "firing"),
            ("p99_latency", "firing"),
            ("error_rate", "resolved"),
            ("p99_latency", "resolved"),
        ]
    )


async def test_growth_alert(hooked: Settings, database: Database, receiver: Receiver) -> None:
    now = datetime.now(UTC)
    async with database.sessionmaker() as db, db.begin():
        db.add(SizeSample(sampled_at=now - timedelta(hours=6), database_bytes=0, tables={}))
        db.add(SizeSample(sampled_at=now, database_bytes=4 * 1024**3, tables={}))
    thresholds = alerts.Thresholds(
        pool_saturation=2.0, p99_ms=1e9, error_rate=2.0, growth_bytes_per_day=1024**3
    )
    fired = await alerts.evaluate_and_notify(database, hooked, thresholds)
    assert ("database_growth", "firing") in {(t.name, t.state) for t in fired}
    assert (
        "16.00 GiB/day"
        in next(b for b in receiver.bodies if b["alert"] == "database_growth")["message"]
    )


async def test_a_new_installation_without_backups_does_not_alert(
    hooked: Settings, database: Database, receiver: Receiver
) -> None:
    assert await alerts.evaluate_and_notify(database, hooked, QUIET) == []
    async with database.sessionmaker() as db, db.begin():
        # Monitoring has run for three days and still no backup: that is worth an alert.
        db.add(
            SizeSample(
                sampled_at=datetime.now(UTC) - timedelta(days=3), database_bytes=1, tables={}
            )
        )
    fired = await alerts.evaluate_and_notify(database, hooked, QUIET)
    assert [(t.name, t.state) for t in fired] == [("backup_age", "firing")]
    assert "no successful backup yet" in receiver.bodies[-1]["message"]


async def test_webhook_failure_is_logged_not_raised(
    db_url: str, tmp_path: Path, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(db_url, tmp_path, TK_ALERT_WEBHOOK_URL="http://127.0.0.1:9/closed")
    write_backup(settings, "old", datetime.now(UTC) - timedelta(days=3))
    fired = await alerts.evaluate_and_notify(database, settings, QUIET)
    assert [t.name for t in fired] == ["backup_age"]
    assert any("alert webhook failed" in r.getMessage() for r in caplog.records)
