"""Live updates in the browser (issue 18): two agents and a customer on one ticket, in three
browser contexts against one real server. A customer's reply appears on an agent's open page
without a reload (and is announced in a live region), the other agent's "viewing" badge
appears, and a reply that collides with someone else's asks for confirmation first."""

from __future__ import annotations

import httpx
from playwright.async_api import Browser, expect

from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.factories import make_person
from tests.tickets.conftest import GOOD_RESPONSE, make_form
from tests.ui.conftest import LiveServer, new_page, screenshot, sign_in


async def test_two_agents_and_a_customer_see_each_other_live(
    browser: Browser, live_server: LiveServer, database: Database, cipher: PiiCipher
) -> None:
    customer = await make_person(database, cipher, role="user", name="Carla Customer")
    aiko = await make_person(database, cipher, role="agent", name="Aiko Tanaka")
    ben = await make_person(database, cipher, role="agent", name="Ben Okafor")
    await make_form(database, form_id="live-ui")
    async with httpx.AsyncClient(
        base_url=live_server.url, headers=customer.auth, timeout=30
    ) as http:
        filed = await http.post(
            "/api/tickets/my",
            json={
                "formId": "live-ui",
                "summary": "Laptop will not boot",
                "formResponse": GOOD_RESPONSE,
            },
        )
    assert filed.status_code == 200, filed.text
    ticket = filed.json()["data"]["id"]

    ben_ctx, ben_page = await new_page(browser, live_server)
    aiko_ctx, aiko_page = await new_page(browser, live_server)
    carla_ctx, carla_page = await new_page(browser, live_server)
    try:
        await sign_in(ben_page, ben.email, ben.password)
        await sign_in(aiko_page, aiko.email, aiko.password)
        await sign_in(carla_page, customer.email, customer.password)
        await ben_page.goto(f"/agent/tickets/{ticket}")
        await expect(ben_page.locator("html")).to_have_attribute("data-live", "open")
        await ben_page.evaluate("window.__notReloaded = true")
        await aiko_page.goto(f"/agent/tickets/{ticket}")

        # Aiko's page says she is viewing: Ben sees it (and not himself).
        presence = ben_page.locator("[data-presence]")
        await expect(presence).to_have_text("Aiko Tanaka is viewing.")
        await expect(aiko_page.locator("[data-presence]")).to_have_text("Ben Okafor is viewing.")

        # The customer replies; it appears on Ben's open page and is announced.
        await carla_page.goto(f"/tickets/{ticket}")
        await carla_page.get_by_label("Your reply").fill("It beeps three times at start.")
        await carla_page.get_by_role("button", name="Send reply").click()
        await expect(carla_page.locator("ol.timeline")).to_contain_text("It beeps three times")
        await carla_page.evaluate("window.__notReloaded = true")  # her page after the post
        timeline = ben_page.locator("ol.timeline").first
        await expect(timeline).to_contain_text("It beeps three times at start.")
        await expect(timeline).to_contain_text("Carla Customer")
        await expect(ben_page.locator("[data-live-announce]")).to_have_text(
            "New reply from Carla Customer: It beeps three times at start."
        )
        assert await ben_page.evaluate("window.__notReloaded") is True

        # Ben starts writing: Aiko sees him replying.
        await ben_page.get_by_label("Message").fill("Please hold the power button for 10 s.")
        await expect(aiko_page.locator("[data-presence]")).to_have_text(
            "Ben Okafor is replying.", timeout=15_000
        )

        # Aiko (page refreshed, so she has seen the customer's reply) answers first.
        await aiko_page.reload()
        await aiko_page.get_by_label("Message").fill("Try a different charger, please.")
        await aiko_page.get_by_role("button", name="Send public reply").click()
        await expect(aiko_page.locator("[data-toasts]")).to_contain_text("Reply sent")
        await expect(ben_page.locator("ol.timeline").first).to_contain_text("different charger")

        # Ben sends: the page shows Aiko's reply and asks before sending his.
        await ben_page.get_by_role("button", name="Send public reply").click()
        alert = ben_page.locator("[data-collision]")
        await expect(alert).to_be_visible()
        await expect(alert).to_contain_text("Someone else replied while you were writing.")
        await expect(alert).to_contain_text("Try a different charger, please.")
        await expect(ben_page.get_by_label("Message")).to_have_value(
            "Please hold the power button for 10 s."
        )
        await screenshot(ben_page, "live-collision-prompt")
        async with httpx.AsyncClient(
            base_url=live_server.url, headers=ben.auth, timeout=30
        ) as http:
            comments = (await http.get(f"/api/tickets/{ticket}/comments")).json()["data"]
        assert [c["body"] for c in comments] == [
            "It beeps three times at start.",
            "Try a different charger, please.",
        ]  # not sent yet

        # Confirmed: sent.
        await ben_page.get_by_role("button", name="Send public reply").click()
        await expect(ben_page.locator("[data-toasts]")).to_contain_text("Reply sent")
        await expect(ben_page.locator("ol.timeline").first).to_contain_text("power button")
        await expect(carla_page.locator("ol.timeline")).to_contain_text("power button")
        # A status change reaches the customer's open page, in place and announced.
        await aiko_page.get_by_label("Status").select_option("pending")
        await aiko_page.get_by_role("button", name="Update status").click()
        await expect(carla_page.get_by_test_id("status")).to_have_text("Pending")
        await expect(carla_page.locator("[data-live-announce]")).to_have_text(
            "Status changed to Pending."
        )
        await expect(ben_page.locator(".page-header")).to_contain_text("Pending")
        assert await carla_page.evaluate("window.__notReloaded") is True
        for page in (ben_page, aiko_page, carla_page):
            assert page.js_errors == [], page.js_errors  # type: ignore[attr-defined]
    finally:
        for context in (ben_ctx, aiko_ctx, carla_ctx):
            await context.close()


async def test_the_queue_shows_a_new_ticket_without_reload(
    browser: Browser, live_server: LiveServer, database: Database, cipher: PiiCipher
) -> None:
    customer = await make_person(database, cipher, role="user")
    agent = await make_person(database, cipher, role="agent")
    await make_form(database, form_id="live-queue")
    context, page = await new_page(browser, live_server)
    try:
        await sign_in(page, agent.email, agent.password)
        await page.goto("/agent")
        await expect(page.locator("html")).to_have_attribute("data-live", "open")
        await page.evaluate("window.__notReloaded = true")
        async with httpx.AsyncClient(
            base_url=live_server.url, headers=customer.auth, timeout=30
        ) as http:
            filed = await http.post(
                "/api/tickets/my",
                json={
                    "formId": "live-queue",
                    "summary": "Fresh in the queue",
                    "formResponse": GOOD_RESPONSE,
                },
            )
        assert filed.status_code == 200, filed.text
        await expect(page.locator("[data-live-queue]")).to_contain_text("Fresh in the queue")
        await expect(page.locator("[data-live-announce]")).to_contain_text("New ticket #")
        assert await page.evaluate("window.__notReloaded") is True
        assert page.js_errors == []  # type: ignore[attr-defined]
    finally:
        await context.close()


async def test_the_system_page_refreshes_its_figures_in_place(
    browser: Browser, live_server: LiveServer, database: Database, cipher: PiiCipher
) -> None:
    admin = await make_person(database, cipher, role="admin")
    customer = await make_person(database, cipher, role="user")
    await make_form(database, form_id="live-system")
    context, page = await new_page(browser, live_server)
    # The page refreshes every minute; the test's clock runs the timers 200 times faster.
    await context.add_init_script(
        "const tkSetInterval = window.setInterval; window.setInterval ="
        " (fn, ms, ...rest) => tkSetInterval(fn, Math.max(50, ms / 200), ...rest);"
    )
    try:
        await sign_in(page, admin.email, admin.password)
        await page.goto("/admin/system")
        await page.evaluate("window.__notReloaded = true")
        open_count = page.locator('#health tr:has(th:text-is("Tickets open")) td')
        await expect(open_count).to_have_text("0")
        async with httpx.AsyncClient(
            base_url=live_server.url, headers=customer.auth, timeout=30
        ) as http:
            filed = await http.post(
                "/api/tickets/my",
                json={"formId": "live-system", "summary": "Counted", "formResponse": GOOD_RESPONSE},
            )
        assert filed.status_code == 200, filed.text
        await expect(open_count).to_have_text("1")
        assert await page.evaluate("window.__notReloaded") is True
        assert page.js_errors == []  # type: ignore[attr-defined]
    finally:
        await context.close()
