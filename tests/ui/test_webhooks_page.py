"""/admin/webhooks in a real browser: create (secret shown once), send a test event that the
live server's queue delivers to a loopback receiver, see it delivered, disable."""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import Page, expect

from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.factories import make_person
from tests.ui.conftest import LiveServer, screenshot, sign_in
from tests.webhooks.conftest import Receiver


@pytest.fixture(autouse=True)
def allow_loopback_receivers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read by the live server's settings (autouse: set before it starts)."""
    monkeypatch.setenv("TK_WEBHOOK_ALLOW_PRIVATE", "true")


async def test_create_test_and_disable_a_webhook(
    page: Page, live_server: LiveServer, database: Database, cipher: PiiCipher
) -> None:
    receiver = Receiver()
    receiver.start()
    try:
        admin = await make_person(database, cipher, role="admin")
        await sign_in(page, admin.email, admin.password)
        await page.get_by_role("link", name="Webhooks").click()
        await expect(page).to_have_url(re.compile(r"/admin/webhooks$"))
        await expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()

        await page.get_by_label("Receiver URL").fill("gopher://example.com/")
        await page.get_by_label("ticket.created").check()
        await page.get_by_role("button", name="Create webhook").click()
        await expect(page.locator(".field-error")).to_contain_text("only http:// and https://")

        await page.get_by_label("Receiver URL").fill(receiver.url)
        await page.get_by_role("button", name="Create webhook").click()
        secret = page.locator("[data-new-secret]")
        await expect(secret).to_contain_text("whsec_")
        row = page.locator("tr[data-webhook]")
        await expect(row).to_have_count(1)
        await expect(row.locator("[data-unusual-port]")).to_have_text("Unusual port")
        await screenshot(page, "admin-webhooks")

        await row.get_by_role("button", name=re.compile("^Send test event")).click()
        await expect(page.get_by_role("heading", name=re.compile("^Deliveries to"))).to_be_visible()
        for _ in range(200):  # the live server's own queue sends it
            if receiver.requests:
                break
            await asyncio.sleep(0.1)
        assert receiver.requests and receiver.requests[0].json["type"] == "webhook.test"
        delivered = page.locator('tr[data-status="delivered"]')
        for _ in range(50):
            await page.reload()
            if await delivered.count():
                break
            await asyncio.sleep(0.2)
        await expect(delivered).to_contain_text("HTTP 200")
        await expect(delivered.get_by_role("button", name=re.compile("^Retry"))).to_be_visible()

        await page.get_by_role("link", name="← All webhooks").click()
        await row.get_by_role("button", name=re.compile("^Disable")).click()
        await expect(row).to_contain_text("Disabled")
        await expect(page.locator("[data-new-secret]")).to_have_count(0)  # shown once only
        assert page.js_errors == []  # type: ignore[attr-defined]
    finally:
        receiver.stop()
