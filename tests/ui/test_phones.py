"""Every page at 360 px wide: no sideways scrolling, touch targets of 44 px, a screenshot."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, Page, expect

from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.ui.conftest import LiveServer
from tests.ui.site_pages import contexts_by_role, open_page, seed_site, site_pages

PHONES = Path(__file__).resolve().parents[2] / "test-artifacts" / "phones"
WIDTH, HEIGHT = 360, 740
MIN_TARGET = 44

# Controls a finger must hit: buttons, fields, menu and row links, links standing alone in their
# block, and the labels of check boxes and radio buttons (the label is the target people tap).
# Links inside running text are exempt (WCAG 2.5.8's inline exception).
SMALL_TARGETS = r"""(minimum) => {
  const visible = (el) => {
    const box = el.getBoundingClientRect();
    return box.width > 1 && box.height > 1 && el.closest("[hidden], .visually-hidden") === null
      && getComputedStyle(el).visibility !== "hidden";
  };
  const fields = "input:not([type=hidden]):not([type=checkbox]):not([type=radio])";
  const targets = new Set(document.querySelectorAll(`button, .btn, select, textarea, ${fields}`));
  for (const a of document.querySelectorAll("a[href]")) {
    const alone = a.parentElement.textContent.trim() === a.textContent.trim();
    if (alone || a.closest("nav, td, .card-title")) targets.add(a);
  }
  for (const box of document.querySelectorAll("input[type=checkbox], input[type=radio]")) {
    const label = box.closest("label")
      || (box.id && document.querySelector(`label[for="${box.id}"]`));
    targets.add(label || box);
  }
  const small = [];
  for (const el of targets) {
    if (!visible(el)) continue;
    const box = el.getBoundingClientRect();
    if (box.width < minimum || box.height < minimum) {
      const name = (el.getAttribute("aria-label") || el.textContent || el.name || "")
        .replace(/\s+/g, " ").trim();
      small.push(`${el.tagName.toLowerCase()}.${el.className} "${name.slice(0, 30)}" ` +
        `${Math.round(box.width)}x${Math.round(box.height)}`);
    }
  }
  return small;
}"""


async def widest(page: Page) -> int:
    return int(await page.evaluate("document.documentElement.scrollWidth"))


async def test_every_page_fits_a_phone_without_sideways_scrolling(
    browser: Browser, live_server: LiveServer, database: Database, cipher: PiiCipher
) -> None:
    ticket_id, form_id, reset = await seed_site(database, cipher)
    pages = site_pages(live_server.server.config.app, ticket_id, form_id, reset)
    PHONES.mkdir(parents=True, exist_ok=True)
    for old in PHONES.glob("*.png"):
        old.unlink()
    contexts = await contexts_by_role(
        browser,
        live_server,
        viewport={"width": WIDTH, "height": HEIGHT},
        is_mobile=True,
        has_touch=True,
    )
    too_wide: list[str] = []
    too_small: list[str] = []
    try:
        for site_page in pages:
            _, page = contexts[site_page.role]
            await open_page(page, site_page)
            width = await widest(page)
            if width > WIDTH:
                too_wide.append(f"{site_page.url}: {width} px")
            too_small += [
                f"{site_page.url}: {t}" for t in await page.evaluate(SMALL_TARGETS, MIN_TARGET)
            ]
            shot = PHONES / f"{site_page.slug}.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 1000
    finally:
        for context, _ in contexts.values():
            await context.close()
    assert not too_wide, "pages scrolling sideways at 360 px:\n" + "\n".join(too_wide)
    assert not too_small, f"touch targets under {MIN_TARGET} px:\n" + "\n".join(too_small)
    assert len(list(PHONES.glob("*.png"))) == len(pages)


async def test_the_menu_opens_on_a_phone_and_tables_stack(
    browser: Browser, live_server: LiveServer, database: Database, cipher: PiiCipher
) -> None:
    await seed_site(database, cipher)
    contexts = await contexts_by_role(
        browser, live_server, viewport={"width": WIDTH, "height": HEIGHT}, is_mobile=True
    )
    try:
        _, page = contexts["agent"]
        await page.goto("/agent")
        menu = page.get_by_role("button", name="Menu")
        await expect(menu).to_have_attribute("aria-expanded", "false")
        nav = page.get_by_role("navigation", name="Main")
        await expect(nav).to_be_hidden()
        await menu.click()
        await expect(menu).to_have_attribute("aria-expanded", "true")
        await expect(nav.get_by_role("link", name="All tickets")).to_be_visible()
        assert await widest(page) <= WIDTH
        PHONES.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(PHONES / "agent-menu-open.png"), full_page=True)

        # A queue row is a stacked card: each cell on its own line, named by its column.
        row = page.locator("tr[data-ticket]").first
        cells = row.locator("td")
        first, second = await cells.nth(0).bounding_box(), await cells.nth(1).bounding_box()
        assert first is not None and second is not None
        assert second["y"] >= first["y"] + first["height"] - 1  # below, not beside
        label = await cells.nth(2).evaluate("td => getComputedStyle(td, '::before').content")
        assert "Status" in label
        # Still a table to assistive technology, and the visual label is not read twice.
        status_cell = page.get_by_role("row").nth(1).get_by_role("cell").nth(2)
        name = await status_cell.evaluate("td => td.textContent.trim()")
        await expect(status_cell).to_have_accessible_name(name)
        assert await page.get_by_role("columnheader", name="Status").count() == 1
    finally:
        for context, _ in contexts.values():
            await context.close()
