"""An agent sorts the queue by due time, opens a ticket, sets its priority, team and tags, and
fills a reply from a canned response. Real server, real database, real Chromium (#15)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.async_api import Browser, expect
from sqlalchemy import text

from tekudasai.canned import service as canned_service
from tekudasai.tickets import service as tickets_service
from tests.factories import make_form, make_person
from tests.ui.conftest import LiveServer, new_page, screenshot, sign_in

URGENCY: dict[str, Any] = {
    "type": "dropdown",
    "name": "urgency",
    "label": "How urgent?",
    "mapsTo": "priority",
    "options": [{"label": "Low", "value": "low"}, {"label": "Urgent", "value": "urgent"}],
}


async def test_agent_sorts_by_due_time_and_edits_a_ticket(
    browser: Browser, live_server: LiveServer, database: Any, cipher: Any
) -> None:
    admin = await make_person(database, cipher, role="admin")
    agent = await make_person(database, cipher, role="agent", name="Agnes Agent")
    customer = await make_person(database, cipher, role="user", name="Carla Customer")
    form = await make_form(database, admin, name="Help", elements=[URGENCY])
    async with database.sessionmaker() as db, db.begin():
        ids = []
        for summary, urgency in (("Later", "low"), ("Sooner", "urgent"), ("None", "low")):
            ticket = await tickets_service.create_ticket(
                db,
                reporter_id=customer.user.id,
                form_id=form["id"],
                summary=summary,
                form_response={"urgency": urgency},
            )
            ids.append(ticket.id)
        await canned_service.create(
            db,
            owner_id=agent.user.id,
            is_admin=False,
            title="Greeting",
            body="Hello {{reporter.name}}, this is {{agent.name}} about #{{ticket.id}}.",
            shared=False,
        )
        await db.execute(text("INSERT INTO teams (id, name) VALUES ('t1', 'Network')"))
        await db.execute(
            text(
                "INSERT INTO business_calendars (id, name, timezone, hours, holidays)"
                " VALUES ('cal', 'Office', 'UTC', '{}', '[]')"
            )
        )
        await db.execute(
            text(
                "INSERT INTO sla_policies (id, name, conditions, calendar_id,"
                " first_response_minutes, resolution_minutes)"
                " VALUES ('pol', 'Standard', '{}', 'cal', 60, 480)"
            )
        )
        now = datetime.now(UTC)
        for tid, due in ((ids[0], now + timedelta(hours=5)), (ids[1], now + timedelta(hours=1))):
            await db.execute(
                text(
                    "UPDATE tickets SET sla_policy_id = 'pol', sla_state = 'running',"
                    " sla_first_response_due_at = :due, sla_due_at = :due WHERE id = :id"
                ),
                {"id": tid, "due": due},
            )
    later, sooner, no_sla = ids

    context, page = await new_page(browser, live_server)
    try:
        await sign_in(page, agent.email, agent.password)
        await page.goto("/agent")
        rows = page.locator("tr[data-ticket]")
        await expect(rows).to_have_count(3)
        assert await rows.evaluate_all("rs => rs.map(r => +r.dataset.ticket)") == [
            no_sla,
            sooner,
            later,
        ]
        await expect(
            page.locator(f"tr[data-ticket='{sooner}'] [data-label=Priority]")
        ).to_have_text("Urgent")
        async with page.expect_navigation(url=re.compile(r"sort=due"), wait_until="commit"):
            await page.get_by_label("Sort").select_option("due")  # submits itself
        await expect(rows.first).to_have_attribute("data-ticket", str(sooner))
        assert await rows.evaluate_all("rs => rs.map(r => +r.dataset.ticket)") == [
            sooner,
            later,
            no_sla,
        ]
        sla = page.locator(f"tr[data-ticket='{sooner}'] [data-label=SLA]")
        await expect(sla).to_contain_text("On track")
        await expect(sla.locator("time")).to_have_text(re.compile(r"^(59 min|1 h) left$"))
        await screenshot(page, "agent-queue-by-due-time")

        await page.get_by_role("link", name="Later").click()
        await expect(page.get_by_role("heading", name="Service level")).to_be_visible()
        await expect(page.locator("[data-sla-clock]")).to_contain_text("Standard")
        await page.get_by_label("Priority", exact=True).select_option("high")
        await page.get_by_label("Team", exact=True).select_option(label="Network")
        await page.get_by_label("Tags", exact=True).fill("VPN, office")
        await page.get_by_role("button", name="Save priority, team and tags").click()
        await expect(page.locator(".toast")).to_contain_text("Priority, team and tags saved")
        await expect(page.get_by_text("High priority")).to_be_visible()
        await expect(page.get_by_role("list", name="Tags")).to_contain_text("vpn")

        # With JavaScript the canned reply fills the message box in place.
        await page.get_by_label("Canned response").select_option(label="Greeting")
        await expect(page.get_by_label("Message")).to_have_value(
            f"Hello Carla Customer, this is Agnes Agent about #{later}."
        )
        await expect(page.locator("[data-canned-insert]")).to_be_hidden()
        await screenshot(page, "agent-ticket-service-level")
        assert page.js_errors == []  # type: ignore[attr-defined]
    finally:
        await context.close()
