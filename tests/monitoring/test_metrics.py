"""/metrics: counters and histograms move with traffic, pool gauges follow held connections,
errors are counted by code, slow statements are logged without their literals, access rules."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tekudasai.app import create_app
from tekudasai.db.session import Database
from tekudasai.monitoring import metrics, system
from tests.conftest import BASE_URL, make_settings
from tests.factories import make_person
from tests.monitoring.conftest import parse_metrics, scrape, value


@pytest.fixture(autouse=True)
def _fresh_db_metrics() -> None:
    system.clear_cache()


async def test_requests_are_counted_by_route_template_and_status(app, client) -> None:
    async def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    async def broken() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/api/things/{thing_id}", thing)
    app.add_api_route("/api/broken", broken)
    before = await scrape(client)
    for n in range(3):
        assert (await client.get(f"/api/things/{n}")).status_code == 200
    assert (await client.get("/api/things/not-a-number")).status_code == 400
    assert (await client.get("/api/health")).status_code == 200
    assert (await client.get("/no/such/page")).status_code == 404
    assert (await client.get("/api/broken")).status_code == 500
    for n in range(3):  # made-up methods must not create new series
        await client.request(f"BREW{n}", "/api/health")
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/api/things/{thing_id}"
    assert delta("tk_http_requests_total", method="GET", route=route, status="200") == 3
    assert delta("tk_http_requests_total", method="GET", route=route, status="400") == 1
    assert delta("tk_http_requests_total", method="GET", route="/api/health", status="200") == 1
    assert delta("tk_http_requests_total", method="GET", route="unmatched", status="404") == 1
    # The raw path never becomes a label: one series per template.
    assert not [key for key in after if ("route", "/api/things/1") in key[1]]
    assert delta("tk_http_request_duration_seconds_count", route=route) == 4
    assert delta("tk_http_request_duration_seconds_bucket", route=route, le="+Inf") == 4
    assert value(after, "tk_http_request_duration_seconds_sum", route=route) > 0
    assert delta("tk_errors_total", code="VALIDATION_ERROR") == 1
    assert delta("tk_errors_total", code="NOT_FOUND") == 1
    assert delta("tk_http_requests_total", method="GET", route="/api/broken", status="500") == 1
    assert delta("tk_errors_total", code="UNEXPECTED_ERROR") == 1
    assert delta("tk_http_requests_total", method="other", route="/api/health", status="405") == 3


def test_dead_workers_stop_counting_in_live_gauges(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for pid in (dead.pid, os.getpid()):
        (tmp_path / f"gauge_livesum_{pid}.db").write_bytes(b"")
    (tmp_path / f"counter_{dead.pid}.db").write_bytes(b"")
    metrics.forget_dead_workers(str(tmp_path))
    remaining = sorted(p.name for p in tmp_path.iterdir())
    # The dead worker's pool gauges go; its counters stay (they are history, not state).
    assert remaining == sorted([f"counter_{dead.pid}.db", f"gauge_livesum_{os.getpid()}.db"])


async def test_database_queries_are_timed_by_statement_kind(app, client, database) -> None:
    before = await scrape(client)
    async with database.engine.begin() as conn:
        await conn.execute(text("SELECT 1"))
        await conn.execute(text("CREATE TEMP TABLE scratch (n int)"))
        await conn.execute(text("INSERT INTO scratch VALUES (1), (2)"))
        await conn.execute(text("UPDATE scratch SET n = n + 1"))
        await conn.execute(text("DELETE FROM scratch"))
    after = await scrape(client)
    for kind in ("SELECT", "INSERT", "UPDATE", "DELETE", "other"):
        name = "tk_db_query_duration_seconds_count"
        assert value(after, name, kind=kind) > value(before, name, kind=kind), kind


async def test_database_facts_are_exported(app, client) -> None:
    scraped = await scrape(client)
    assert value(scraped, "tk_database_size_bytes") > 1_000_000
    assert value(scraped, "tk_table_size_bytes", table="tickets") > 0
    assert ("tk_tickets", frozenset({("status", "open")})) in scraped
    assert value(scraped, "tk_last_backup_timestamp_seconds") == 0  # no backup directory yet


async def test_pool_gauges_follow_connections_held(app, client, database: Database) -> None:
    idle = await scrape(client)
    assert value(idle, "tk_db_pool_size") == 5
    assert value(idle, "tk_db_pool_capacity") == 5 + app.state.settings.db_max_overflow
    async with AsyncExitStack() as stack:
        for _ in range(7):  # 5 from the pool and 2 overflow connections
            conn = await stack.enter_async_context(database.engine.connect())
            await conn.execute(text("SELECT 1"))
        held = await scrape(client)
        assert value(held, "tk_db_pool_checked_out") == 7
        assert value(held, "tk_db_pool_overflow") == 2
    released = await scrape(client)
    assert value(released, "tk_db_pool_checked_out") == 0


async def test_slow_query_is_logged_with_normalised_sql(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(db_url, tmp_path, TK_SLOW_QUERY_MS="50")
    database = Database.connect(db_url, settings, pool_size=1)
    app = create_app(settings, database)
    try:
        async with app.router.lifespan_context(app):
            before = value(
                parse_metrics(metrics.exposition().decode()),
                "tk_db_slow_queries_total",
                kind="SELECT",
            )
            caplog.set_level(logging.WARNING, logger="tekudasai.slow_query")
            async with database.engine.connect() as conn:
                await conn.execute(text("SELECT pg_sleep(0.12), 'card 4111-1111' AS secret, 42"))
                await conn.execute(text("SELECT 1"))  # fast: not logged
            records = [r for r in caplog.records if r.name == "tekudasai.slow_query"]
            assert len(records) == 1
            message = records[0].getMessage()
            assert "SELECT pg_sleep(?), ? AS secret, ?" in message
            assert "4111" not in message and "42" not in message
            assert records[0].duration_ms >= 100  # type: ignore[attr-defined]
            after = value(
                parse_metrics(metrics.exposition().decode()),
                "tk_db_slow_queries_total",
                kind="SELECT",
            )
            assert after == before + 1
    finally:
        await database.dispose()


def test_normalise_sql_strips_literals() -> None:
    sql = """SELECT * FROM t WHERE a = 'x''y' AND b IN (1, 2, 3) AND c > -4.5e3
             AND d = $1 AND e = $tag$dollar ' quoted$tag$ AND f2 = 7"""
    assert metrics.normalise_sql(sql) == (
        "SELECT * FROM t WHERE a = ? AND b IN (?, …) AND c > ? AND d = $1 AND e = ? AND f2 = ?"
    )
    assert metrics.statement_kind("  select 1") == "SELECT"
    assert metrics.statement_kind("WITH x AS (SELECT 1) SELECT * FROM x") == "other"


async def test_metrics_only_for_loopback_when_no_token(app, database, cipher) -> None:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as remote:
        response = await remote.get("/metrics")
        assert response.status_code == 404
        assert response.json()["code"] == "NOT_FOUND"
        agent = await make_person(database, cipher, role="agent")
        assert (await remote.get("/metrics", headers=agent.auth)).status_code == 404
        admin = await make_person(database, cipher, role="admin")
        response = await remote.get("/metrics", headers=admin.auth)
        assert response.status_code == 200
        assert "tk_http_requests_total" in response.text


async def test_metrics_token_is_required_when_set(db_url: str, tmp_path: Path, cipher) -> None:
    settings = make_settings(db_url, tmp_path, TK_METRICS_TOKEN="scrape-me-0123456789")
    database = Database.connect(db_url, settings, pool_size=2)
    app = create_app(settings, database)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)  # loopback: the token is still needed
            async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
                assert (await http.get("/metrics")).status_code == 401
                wrong = {"Authorization": "Bearer nope"}
                response = await http.get("/metrics", headers=wrong)
                assert response.status_code == 401
                assert response.json()["code"] == "UNAUTHORIZED"
                right = {"Authorization": "Bearer scrape-me-0123456789"}
                assert (await http.get("/metrics", headers=right)).status_code == 200
                admin = await make_person(database, cipher, role="admin")
                assert (await http.get("/metrics", headers=admin.auth)).status_code == 200
    finally:
        await database.dispose()


@pytest.mark.parametrize("enabled", [True, False])
async def test_metrics_can_be_left_out_of_the_app(
    db_url: str, tmp_path: Path, enabled: bool
) -> None:
    """`create_app(metrics=False)`, the benchmark's baseline, counts no requests or statements."""
    settings = make_settings(db_url, tmp_path)
    database = Database.connect(db_url, settings, pool_size=1)  # a fresh, untimed engine
    app = create_app(settings, database, metrics=enabled)
    transport = httpx.ASGITransport(app=app)

    def sample() -> tuple[float, float]:
        found = parse_metrics(metrics.exposition().decode())
        return (
            value(found, "tk_http_requests_total", method="GET", route="/api/health", status="200"),
            value(found, "tk_db_query_duration_seconds_count", kind="SELECT"),
        )

    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http,
        ):
            before = sample()
            assert (await http.get("/api/health")).status_code == 200
            async with database.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            after = sample()
    finally:
        await database.dispose()
    counted = (after[0] - before[0], after[1] - before[1])
    assert counted == ((1.0, 1.0) if enabled else (0.0, 0.0))
