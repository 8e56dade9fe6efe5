"""/admin/system (admin only) and its SVG charts; `tekudasai db top`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import httpx
from sqlalchemy import text

from tekudasai.db.session import Database
from tekudasai.monitoring import growth, querystats, system, traffic
from tekudasai.web.charts import Chart, line_chart
from tekudasai.web.rendering import templates
from tests.conftest import TEST_SECRET
from tests.factories import make_person
from tests.monitoring.conftest import write_backup_manifest

HTML = {"Accept": "text/html"}


def draw(chart: Chart) -> str:
    """The SVG as the system page renders it (the Jinja macro)."""
    return str(templates.env.get_template("admin/_charts.html").module.line_chart(chart))  # type: ignore[attr-defined]


def test_line_chart_draws_one_polyline_per_series() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    series = {
        "p50": [(start + timedelta(minutes=i), float(i)) for i in range(10)],
        "p99": [(start + timedelta(minutes=i), float(i * 3)) for i in range(10)],
    }
    svg = draw(line_chart(series, title="Latency <ms>", unit=" ms"))
    root = ElementTree.fromstring(svg)  # noqa: S314 - our own output, checked well-formed
    ns = "{http://www.w3.org/2000/svg}"
    lines = root.findall(f"{ns}polyline")
    assert len(lines) == 2
    assert len(lines[0].get("points", "").split()) == 10
    assert "Latency &lt;ms&gt;" in svg  # labels are escaped
    assert "2026-01-01 00:00 UTC" in svg and "2026-01-01 00:09 UTC" in svg


def test_line_chart_without_data_says_so() -> None:
    svg = draw(line_chart({"database": []}, title="Database size"))
    ElementTree.fromstring(svg)  # noqa: S314
    assert "no data yet" in svg and "polyline" not in svg


def test_human_bytes() -> None:
    assert system.human_bytes(512) == "512 B"
    assert system.human_bytes(3 * 1024**2) == "3.0 MiB"


async def test_system_page_for_admins(
    client: httpx.AsyncClient, database: Database, cipher, settings
) -> None:
    async with database.sessionmaker() as db, db.begin():
        await growth.sample_sizes(db)
        await traffic.sample_traffic(db)
    for _ in range(3):
        await client.get("/api/health")
    async with database.sessionmaker() as db, db.begin():
        await traffic.sample_traffic(db)
    write_backup_manifest(settings.backups_dir, "20260101T000000Z", "2026-01-01T00:00:00.000Z")
    admin = await make_person(database, cipher, role="admin")
    response = await client.get("/admin/system", headers={**admin.auth, **HTML})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for section in ("health", "pool", "charts", "slow-queries", "backups"):
        assert f'id="{section}"' in page
    assert page.count("<svg") == 3
    assert "Database size" in page and "Request latency (ms)" in page
    assert "2026-01-01T00:00:00.000Z" in page  # the backup
    assert "answers" in page
    # Charts are inline SVG: no chart library, nothing from another site.
    assert "cdn" not in page.lower()
    assert all('src="/static/' in tag for tag in page.split("<script")[1:])
    assert "Content-Security-Policy" in response.headers
    assert "Sign out" in page  # the shared layout


async def test_system_page_hidden_from_others(
    client: httpx.AsyncClient, database: Database, cipher
) -> None:
    response = await client.get("/admin/system", headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/auth/login")
    for role in ("user", "agent"):
        person = await make_person(database, cipher, role=role)
        response = await client.get("/admin/system", headers={**person.auth, **HTML})
        assert response.status_code == 404


async def test_top_statements_lists_the_heaviest(database: Database) -> None:
    async with database.engine.connect() as conn:
        await conn.execute(text("SELECT pg_sleep(0.05)"))
        for _ in range(3):
            await conn.execute(text("SELECT count(*) FROM tickets"))
    statements = await querystats.top_statements(database.engine, limit=50)
    assert statements
    queries = [s.query for s in statements]
    assert any("pg_sleep" in q for q in queries)
    assert statements == sorted(statements, key=lambda s: -s.total_ms)
    assert all("pg_stat_statements" not in q for q in queries)


def _cli_env(db_url: str, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": db_url,
        "TK_DATA_DIR": str(data_dir),
        "BETTER_AUTH_SECRET": TEST_SECRET,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "COLUMNS": "160",
    }


def _db_top(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tekudasai", "db", "top", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_db_top_prints_a_table(db_url: str, tmp_path: Path) -> None:
    env = _cli_env(db_url, tmp_path)
    result = _db_top(env, "--limit", "5")
    assert result.returncode == 0, result.stderr
    assert "Heaviest statements" in result.stdout
    assert "total ms" in result.stdout and "calls" in result.stdout
    bad = _db_top(env, "--limit", "0")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr


def test_db_top_watch_refreshes_until_interrupted(db_url: str, tmp_path: Path) -> None:
    env = _cli_env(db_url, tmp_path)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "tekudasai", "db", "top", "--watch", "--limit", "3"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(6)  # start-up plus at least one refresh
    watcher.send_signal(signal.SIGINT)
    out, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err
    assert "Heaviest statements" in out
    assert "Traceback" not in err
