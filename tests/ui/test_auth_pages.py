"""Sign-up, sign-in, sign-out and the page chrome in a real browser."""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import Browser, Page, expect

from tests.factories import make_person
from tests.ui.conftest import LiveServer, screenshot, sign_in, sign_up


async def test_signed_out_visitor_goes_to_login_and_back(
    page: Page, live_server: LiveServer
) -> None:
    await page.goto("/tickets/123?tab=x")
    await expect(page).to_have_url(re.compile(r"/auth/login\?next=%2Ftickets%2F123%3Ftab%3Dx$"))
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await screenshot(page, "login")


async def test_signup_signin_signout(page: Page, live_server: LiveServer) -> None:
    await sign_up(page, "Ada <b>Lovelace</b>", "ada@example.test", "short")
    # The server judges: too short a password comes back next to its field, the input kept.
    await expect(page.locator("#f-password-error")).to_contain_text("Password too short")
    await expect(page.get_by_label("Full name")).to_have_value("Ada <b>Lovelace</b>")
    await screenshot(page, "signup-errors")

    await page.locator("#f-password").fill("a-good-password")
    await page.get_by_label("Repeat password").fill("a-good-password")
    await page.get_by_role("button", name="Create account").click()
    await expect(page).to_have_url(re.compile(r"/$"))
    # The name is escaped, never markup.
    await expect(page.locator(".user-name")).to_have_text("Ada <b>Lovelace</b>")
    await expect(page.locator(".toast")).to_contain_text("Your account is ready")
    csp = (await page.request.get("/auth/login")).headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/auth/login$"))
    await expect(page.locator(".toast")).to_contain_text("signed out")

    await sign_in(page, "ada@example.test", "wrong-password")
    await expect(page.get_by_role("alert")).to_contain_text("Wrong e-mail or password")
    await sign_in(page, "ADA@example.test", "a-good-password")
    await expect(page.locator(".user-name")).to_have_text("Ada <b>Lovelace</b>")
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_customer_gets_404_on_agent_pages(
    page: Page, live_server: LiveServer, database, cipher
) -> None:  # type: ignore[no-untyped-def]
    person = await make_person(database, cipher)
    await sign_in(page, person.email, person.password)
    response = await page.goto("/agent")
    assert response is not None and response.status == 404
    await expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    await screenshot(page, "error-404")


async def test_dark_scheme_and_small_screen(
    browser: Browser, live_server: LiveServer, database: Any, cipher: Any
) -> None:
    person = await make_person(database, cipher, name="Dana Dark")
    context = await browser.new_context(
        base_url=live_server.url,
        viewport={"width": 390, "height": 844},
        color_scheme="dark",
        is_mobile=True,
    )
    page = await context.new_page()
    await page.goto("/auth/login")
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background != "rgb(246, 247, 251)"  # the light background
    await screenshot(page, "login-dark-mobile")
    await sign_in(page, person.email, person.password)
    nav = page.locator("#site-nav")
    await expect(nav).to_be_hidden()
    toggle = page.get_by_role("button", name="Menu")
    await toggle.click()
    await expect(nav).to_be_visible()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(nav.get_by_role("link", name="New ticket")).to_be_visible()
    await screenshot(page, "my-tickets-dark-mobile")
    # Keyboard: the skip link is the first stop and leads to the main content.
    await page.goto("/")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#main")).to_be_focused()
    await context.close()
