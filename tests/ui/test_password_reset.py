"""Forgot password → mail → new password → sign in, in a real browser (#12 item 11)."""

from __future__ import annotations

import email
import re
from pathlib import Path

from playwright.async_api import Page, expect

from tests.factories import make_person
from tests.ui.conftest import LiveServer, screenshot, sign_in, wait


def newest_link(outbox: Path) -> str | None:
    mails = sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    if not mails:
        return None
    body = email.message_from_bytes(mails[-1].read_bytes()).get_payload(decode=True)
    return next(word for word in body.decode().split() if "token=" in word)  # type: ignore[union-attr]


async def reset_link(outbox: Path) -> str:
    """The link in the live server's newest mail (mail is sent after the answer)."""
    for _ in range(100):
        link = newest_link(outbox)
        if link:
            return link
        await wait(0.05)
    raise AssertionError("no mail in the outbox")


async def test_forgot_password_mail_reset_and_sign_in(
    page: Page, live_server: LiveServer, database, cipher, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    person = await make_person(database, cipher)
    await page.goto("/auth/login")
    await page.get_by_role("link", name="Forgot password?").click()
    await expect(page.get_by_role("heading", name="Forgot your password?")).to_be_visible()
    await page.get_by_label("E-mail").fill(person.email)
    await page.get_by_role("button", name="Send reset link").click()
    await expect(page).to_have_url(re.compile(r"/auth/login$"))
    await expect(page.locator(".toast")).to_contain_text("reset link is on its way")

    link = await reset_link(tmp_path / "data" / "outbox")
    assert link.startswith(f"{live_server.url}/auth/reset-password?token=")
    await page.goto(link)
    await expect(page.get_by_role("heading", name="Set a new password")).to_be_visible()
    await page.get_by_label("New password").fill("short")
    await page.get_by_label("Repeat password").fill("short")
    await page.get_by_role("button", name="Set password").click()
    await expect(page.locator("#f-password-error")).to_contain_text("Password too short")
    await screenshot(page, "reset-password-error")

    await page.get_by_label("New password").fill("my-new-password-1")
    await page.get_by_label("Repeat password").fill("my-new-password-1")
    await page.get_by_role("button", name="Set password").click()
    await expect(page).to_have_url(re.compile(r"/auth/login$"))
    await expect(page.locator(".toast")).to_contain_text("Your password has been changed")

    await sign_in(page, person.email, person.password)
    await expect(page.get_by_role("alert")).to_contain_text("Wrong e-mail or password")
    await sign_in(page, person.email, "my-new-password-1")
    await expect(page.locator(".user-name")).to_have_text(person.name)

    # The link worked once.
    await page.goto(link)
    await expect(page.get_by_role("alert")).to_contain_text("already used")
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_verification_link_shows_a_page(page: Page, live_server: LiveServer) -> None:
    await page.goto("/auth/verify?token=made-up")
    await expect(page.get_by_role("heading", name="Link not valid")).to_be_visible()
    await screenshot(page, "verify-invalid")
