"""/settings/security in Chromium: two-factor set-up from the QR page, then a sign-in in two
steps; a passkey registered and used with a CDP virtual authenticator (real WebAuthn, nothing
mocked) from http://localhost:PORT, as the contract promises for a loopback base URL."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import pyotp
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, CDPSession, Page, expect
from playwright.async_api import Error as PlaywrightError
from sqlalchemy import select

from tekudasai.accounts.models import Passkey
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.factories import make_person
from tests.ui.conftest import LiveServer, screenshot, sign_in
from tests.ui.test_accessibility import audit
from tests.ui.test_phones import widest


async def localhost_page(browser: Browser, live_server: LiveServer) -> tuple[BrowserContext, Page]:
    port = live_server.url.rsplit(":", 1)[1]
    context = await browser.new_context(base_url=f"http://localhost:{port}")
    page = await context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # type: ignore[attr-defined]
    return context, page


async def virtual_authenticator(page: Page) -> tuple[CDPSession, str]:
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    added: dict[str, Any] = await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    return cdp, added["authenticatorId"]


async def sign_out(page: Page) -> None:
    await page.locator("form[action='/auth/logout'] button").click()
    await page.wait_for_url("**/auth/login")


async def test_passkey_registered_and_used_to_sign_in(
    browser: Browser, live_server: LiveServer, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher, name="Pat Passkey")
    context, page = await localhost_page(browser, live_server)
    try:
        cdp, authenticator = await virtual_authenticator(page)
        await sign_in(page, person.email, person.password)
        await page.goto("/settings/security")
        await page.get_by_label("Name (optional)").fill("Virtual key")
        await page.get_by_role("button", name="Add a passkey").click()
        row = page.locator("[data-passkey-row]")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("Virtual key")
        credentials = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
        assert len(credentials["credentials"]) == 1
        assert credentials["credentials"][0]["isResidentCredential"] is True
        await screenshot(page, "security-passkey-added")

        await sign_out(page)
        await page.goto("/auth/login?next=/new-ticket")
        await page.get_by_role("button", name="Continue with a passkey").click()
        try:
            await page.wait_for_url(lambda url: urlsplit(url).path == "/new-ticket")
        except PlaywrightError:
            status = await page.locator("[data-passkey-status]").text_content()
            raise AssertionError(f"passkey sign-in did not finish: {status}") from None
        session = await page.evaluate("fetch('/api/auth/session').then((r) => r.json())")
        assert session["user"]["email"] == person.email
        async with database.sessionmaker() as db:
            stored = (await db.scalars(select(Passkey))).all()
        assert len(stored) == 1 and stored[0].last_used_at is not None
        assert page.js_errors == []  # type: ignore[attr-defined]
    finally:
        await context.close()


async def test_two_factor_set_up_from_the_qr_page_then_sign_in(
    page: Page, live_server: LiveServer, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    await sign_in(page, person.email, person.password)
    await page.goto("/settings/security")
    await page.locator("#f-enable-password").fill(person.password)
    await page.get_by_role("button", name="Set up two-factor sign-in").click()
    await expect(page.locator(".qr svg")).to_be_visible()
    await expect(page.locator("[data-backup-codes] li")).to_have_count(10)
    uri = (await page.locator("[data-totp-uri]").text_content() or "").strip()
    secret = (await page.locator("[data-totp-secret]").text_content() or "").strip()
    totp = pyotp.parse_uri(uri)
    assert totp.secret == secret and totp.name == person.email and totp.issuer == "Te Kudasai"
    await screenshot(page, "security-two-factor-setup")
    await page.get_by_label("Code from the app").fill(totp.now())
    await page.get_by_role("button", name="Verify and turn on").click()
    await expect(page.get_by_text("Two-factor sign-in is on.")).to_be_visible()
    await expect(page.get_by_role("button", name="Turn off two-factor sign-in")).to_be_visible()

    await sign_out(page)
    await sign_in(page, person.email, person.password)
    await page.wait_for_url("**/auth/two-factor**")
    # This page exists only in this state: the site-wide audits leave it to this test.
    axe = Axe()
    assert await audit(page, axe, "/auth/two-factor") == []
    await page.set_viewport_size({"width": 360, "height": 740})
    assert await widest(page) <= 360
    # The code of the next period: this period's was used to turn it on.
    await page.get_by_label("Code").fill(totp.at(time.time() + 30))
    await page.get_by_role("button", name="Verify").click()
    await page.wait_for_url(live_server.url + "/")
    await expect(page.locator(".user-name")).to_have_text(person.name)
    assert page.js_errors == []  # type: ignore[attr-defined]
