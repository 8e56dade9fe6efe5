"""The agent queue by keyboard only: focus order, visible focus and the documented shortcuts."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.ui.conftest import sign_in
from tests.ui.site_pages import ACCOUNTS, seed_site

FOCUSED = """() => {
  const el = document.activeElement;
  const name = el.getAttribute("aria-label") || el.textContent || el.id || "";
  return `${el.tagName.toLowerCase()}:${name.replace(/\\s+/g, " ").trim()}`;
}"""


async def focused(page: Page) -> str:
    return str(await page.evaluate(FOCUSED))


async def open_queue(page: Page) -> Page:
    """Sign in as the agent on the test's own page (its context is closed afterwards: a page
    left open keeps its live stream, and with it the live server, running)."""
    agent = ACCOUNTS["agent"]
    await sign_in(page, agent.email, agent.password)
    await page.goto("/agent")
    await page.wait_for_load_state("networkidle")
    return page


async def test_queue_shortcuts_move_open_and_search(
    page: Page, database: Database, cipher: PiiCipher
) -> None:
    await seed_site(database, cipher)
    page = await open_queue(page)
    help_section = page.get_by_role("region", name="Keyboard shortcuts")
    await expect(help_section).to_be_visible()
    for key in ("j", "k", "o", "/", "?"):
        kbd = help_section.locator("kbd", has_text=re.compile(f"^{re.escape(key)}$"))
        await expect(kbd).to_have_count(1)

    rows = page.locator("[data-queue] tbody tr[data-ticket]")
    ids = [await r.get_attribute("data-ticket") for r in await rows.all()]
    assert len(ids) >= 3

    await page.keyboard.press("j")
    first_link = rows.nth(0).locator("a.row-link")
    await expect(first_link).to_be_focused()
    await expect(rows.nth(0)).to_have_class(re.compile("is-current"))
    # The focus is visible: a real outline on the focused link.
    outline = await first_link.evaluate(
        "a => [getComputedStyle(a).outlineStyle, parseFloat(getComputedStyle(a).outlineWidth)]"
    )
    assert outline[0] != "none" and outline[1] >= 2

    await page.keyboard.press("j")
    await page.keyboard.press("j")
    await expect(rows.nth(2).locator("a.row-link")).to_be_focused()
    await page.keyboard.press("k")
    await expect(rows.nth(1).locator("a.row-link")).to_be_focused()
    await expect(rows.nth(0)).not_to_have_class(re.compile("is-current"))

    # "/" focuses the search box without typing a slash; Escape returns to the current row.
    await page.keyboard.press("/")
    search = page.get_by_role("searchbox", name="Search")
    await expect(search).to_be_focused()
    await expect(search).to_have_value("")
    await page.keyboard.type("jk")  # letters typed into a field are text, not shortcuts
    await expect(search).to_have_value("jk")
    await page.keyboard.press("Escape")
    await expect(rows.nth(1).locator("a.row-link")).to_be_focused()

    # Enter on the selected ticket opens it; "o" does the same.
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(rf"/agent/tickets/{ids[1]}$"))
    await page.go_back()
    await page.wait_for_load_state("networkidle")
    await page.keyboard.press("j")
    await page.keyboard.press("o")
    await expect(page).to_have_url(re.compile(rf"/agent/tickets/{ids[0]}$"))

    # "?" jumps to the list of shortcuts.
    await page.go_back()
    await page.wait_for_load_state("networkidle")
    await page.keyboard.press("?")
    await expect(help_section).to_be_focused()
    assert not page.js_errors  # type: ignore[attr-defined]


async def test_single_key_shortcuts_can_be_switched_off(
    page: Page, database: Database, cipher: PiiCipher
) -> None:
    await seed_site(database, cipher)
    page = await open_queue(page)
    toggle = page.get_by_label(re.compile("^Single-key shortcuts"))
    await expect(toggle).to_be_checked()
    await toggle.uncheck()
    await page.locator("h1").click()  # focus leaves the check box
    await page.keyboard.press("j")
    await expect(page.locator("[data-queue] a.row-link").first).not_to_be_focused()
    await page.reload()
    await page.wait_for_load_state("networkidle")
    await expect(toggle).not_to_be_checked()  # remembered
    await page.keyboard.press("j")
    await expect(page.locator("[data-queue] a.row-link").first).not_to_be_focused()
    await toggle.check()
    await page.locator("h1").click()
    await page.keyboard.press("j")
    await expect(page.locator("[data-queue] a.row-link").first).to_be_focused()


async def test_queue_focus_order_follows_the_page(
    page: Page, database: Database, cipher: PiiCipher
) -> None:
    await seed_site(database, cipher)
    page = await open_queue(page)
    order: list[str] = []
    for _ in range(40):
        await page.keyboard.press("Tab")
        order.append(await focused(page))
    assert order[0] == "a:Skip to content"

    def position(prefix: str) -> int:
        return next(i for i, name in enumerate(order) if name.startswith(prefix))

    search = position("input:search")
    apply = position("button:Apply")
    first_row = position("a:")  # the brand and menu links come before the filters
    nav = position("a:All tickets")
    rows = [i for i, name in enumerate(order) if i > apply and name.startswith("a:")]
    assign = position("button:Assign to me")
    assert first_row < nav < search < apply < rows[0] < assign
    # The skip link jumps over the header straight to the filters.
    await page.goto("/agent")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await page.keyboard.press("Tab")
    assert await focused(page) == "input:search"
