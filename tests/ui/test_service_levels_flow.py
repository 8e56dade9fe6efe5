"""The service-levels flow in Chromium, through the admin pages only: a team of two agents with
round-robin assignment, a calendar, an SLA policy and the automation "ticket.created -> set team,
assign round robin"; then two tickets filed through the API land in the agent queue assigned
to different agents, each with its SLA shown."""

from __future__ import annotations

import httpx
from playwright.async_api import Browser, expect

from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.factories import make_form, make_person
from tests.ui.conftest import LiveServer, new_page, screenshot, sign_in

ELEMENTS = [
    {"id": "e1", "type": "textarea", "name": "description", "label": "What?", "required": True}
]


async def test_admin_sets_up_round_robin_with_an_sla_and_the_queue_shows_it(
    browser: Browser, live_server: LiveServer, database: Database, cipher: PiiCipher
) -> None:
    admin = await make_person(database, cipher, role="admin", name="Ada Admin")
    aiko = await make_person(database, cipher, role="agent", name="Aiko Agent")
    ben = await make_person(database, cipher, role="agent", name="Ben Agent")
    customer = await make_person(database, cipher, name="Carla Customer")
    form = await make_form(database, admin, elements=ELEMENTS, name="Printers")

    context, page = await new_page(browser, live_server)
    try:
        await sign_in(page, admin.email, admin.password)
        await page.goto("/admin/service-levels")

        # The team: two members, round robin.
        team_form = page.locator("form[aria-labelledby=new-team-h]")
        await team_form.locator("#f-team_name").fill("Hardware")
        await team_form.get_by_label("Aiko Agent").check()
        await team_form.get_by_label("Ben Agent").check()
        await team_form.get_by_label("Assignment of new tickets").select_option("round_robin")
        await team_form.get_by_role("button", name="Create team").click()
        await expect(page.locator("tr[data-team=Hardware]")).to_contain_text("Aiko Agent")

        # A calendar that is always open (the SLA runs whenever the test does).
        calendar_form = page.locator("form[aria-labelledby=new-calendar-h]")
        await calendar_form.locator("#f-calendar_name").fill("Always")
        await calendar_form.locator("#f-timezone").fill("UTC")
        for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
            await calendar_form.locator(f"#f-hours_{day}").fill("00:00-24:00")
        await calendar_form.get_by_role("button", name="Create calendar").click()
        await expect(page.locator("tr[data-calendar=Always]")).to_be_visible()

        # The SLA policy: every ticket, on that calendar.
        policy_form = page.locator("form[aria-labelledby=new-policy-h]")
        await policy_form.locator("#f-policy_name").fill("Everything")
        await policy_form.locator("#f-calendar_id").select_option(label="Always (UTC)")
        await policy_form.locator("#f-first_response_minutes").fill("60")
        await policy_form.locator("#f-resolution_minutes").fill("480")
        await policy_form.get_by_role("button", name="Create SLA policy").click()
        await expect(page.locator("tr[data-policy=Everything]")).to_be_visible()

        # The automation, by clicking: when a ticket is created, set the team, assign round robin.
        await page.get_by_role("link", name="Automations").first.click()
        await page.wait_for_url("**/admin/automations")
        await page.locator("#f-name").fill("Hardware round robin")
        await page.locator("#event").select_option("ticket.created")
        await page.locator("#cond_field_0").select_option("formId")
        await page.locator("#cond_op_0").select_option("in")
        await page.locator("#cond_value_0").fill(form["id"])
        await page.locator("#act_type_0").select_option("set_team")
        await page.locator("#act_team_0").select_option(label="Hardware")
        await page.locator("#act_type_1").select_option("assign")
        await page.locator("#act_strategy_1").select_option("round_robin")
        await page.get_by_role("button", name="Create automation").click()
        row = page.locator("tr[data-automation='Hardware round robin']")
        await expect(row).to_contain_text("Set team: Hardware")
        await expect(row).to_contain_text("Enabled")
        await screenshot(page, "service-levels-automation")

        # Two tickets through the API.
        ids = []
        async with httpx.AsyncClient(base_url=live_server.url, headers=customer.auth) as api:
            for n in range(2):
                made = await api.post(
                    "/api/tickets/my",
                    json={
                        "formId": form["id"],
                        "summary": f"Printer {n} jams",
                        "formResponse": {"description": "Paper everywhere"},
                    },
                )
                assert made.status_code == 200, made.text
                ids.append(made.json()["data"]["id"])
        async with httpx.AsyncClient(base_url=live_server.url, headers=aiko.auth) as api:
            tickets = [(await api.get(f"/api/tickets/{i}")).json()["data"] for i in ids]
        assert {t["assigneeId"] for t in tickets} == {aiko.user.id, ben.user.id}
        assert all(t["teamId"] for t in tickets)
        assert all(t["sla"] and t["sla"]["state"] == "running" for t in tickets)

        # The agent queue shows them assigned to different agents, with their SLA.
        assert not page.js_errors  # type: ignore[attr-defined]
        await context.close()
        context, page = await new_page(browser, live_server)
        await sign_in(page, aiko.email, aiko.password)
        await page.goto("/agent")
        names = set()
        for ticket_id in ids:
            queue_row = page.locator(f"tr[data-ticket='{ticket_id}']")
            await expect(queue_row).to_be_visible()
            text = await queue_row.inner_text()
            names |= {name for name in ("Aiko Agent", "Ben Agent") if name in text}
            # The SLA cell: its state in words and the time to the first-response target.
            sla_cell = queue_row.locator("td[data-sla=running]")
            await expect(sla_cell).to_contain_text("On track")
            await expect(sla_cell.locator("time")).to_contain_text("left")
        assert names == {"Aiko Agent", "Ben Agent"}
        await screenshot(page, "service-levels-queue")
        assert not page.js_errors  # type: ignore[attr-defined]
    finally:
        await context.close()
