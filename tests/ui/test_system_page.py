"""/admin/system in a real browser: the charts render as inline SVG under the page's CSP."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Page, expect

from tekudasai.db.session import Database
from tekudasai.monitoring import growth, traffic
from tests.factories import make_person
from tests.ui.conftest import LiveServer, screenshot, sign_in


async def test_admin_sees_health_pool_queries_and_charts(
    page: Page, live_server: LiveServer, database: Database, cipher
) -> None:  # type: ignore[no-untyped-def]
    async with database.sessionmaker() as db, db.begin():
        await growth.sample_sizes(db)
        await traffic.sample_traffic(db)
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        for _ in range(20):
            await http.get("/api/health")
    async with database.sessionmaker() as db, db.begin():
        await traffic.sample_traffic(db)
        await growth.sample_sizes(db)

    admin = await make_person(database, cipher, role="admin")
    await sign_in(page, admin.email, admin.password)
    await page.get_by_role("link", name="System").click()
    await expect(page).to_have_url(re.compile(r"/admin/system$"))
    await expect(page.get_by_role("heading", name="System", exact=True)).to_be_visible()
    await expect(page.locator("#health")).to_contain_text("answers")
    await expect(page.locator("#health")).to_contain_text("at head")
    await expect(page.locator("#pool")).to_contain_text("In use")
    charts = page.locator("svg.tk-chart")
    await expect(charts).to_have_count(3)
    await expect(charts.nth(0).locator("polyline")).to_have_count(1)  # database size
    assert (await charts.nth(0).bounding_box() or {}).get("height", 0) > 100
    await expect(page.locator("#slow-queries table")).to_be_visible()
    await screenshot(page, "admin-system")
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_agent_gets_404(page: Page, live_server: LiveServer, database, cipher) -> None:  # type: ignore[no-untyped-def]
    agent = await make_person(database, cipher, role="agent")
    await sign_in(page, agent.email, agent.password)
    response = await page.goto("/admin/system")
    assert response is not None and response.status == 404
