"""axe-core (WCAG 2.1 A and AA rules) on every page of the web UI, in light and dark schemes."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, expect

from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.ui.conftest import LiveServer
from tests.ui.site_pages import (
    SKIP,
    contexts_by_role,
    html_routes,
    open_page,
    seed_site,
    site_pages,
)

WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# axe leaves its "experimental" rules out unless asked; the WCAG ones among them (accessible
# name containing the visible label, for one) are switched on too.
RUN_AXE = """async (tags) => {
  const rules = {};
  for (const rule of axe.getRules(tags)) rules[rule.ruleId] = { enabled: true };
  const result = await axe.run(document, {
    runOnly: { type: "tag", values: tags }, rules, resultTypes: ["violations"] });
  return result.violations;
}"""


def describe(url: str, violations: list[dict[str, Any]]) -> list[str]:
    lines = []
    for v in violations:
        for node in v["nodes"]:
            target = " ".join(str(t) for t in node["target"])
            summary = (node.get("failureSummary") or "").replace("\n", " ")[:200]
            lines.append(f"{url}: {v['id']} at {target}: {summary}")
    return lines


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_every_page_has_no_wcag_violations(
    browser: Browser,
    live_server: LiveServer,
    database: Database,
    cipher: PiiCipher,
    scheme: Literal["light", "dark"],
) -> None:
    ticket_id, form_id, reset = await seed_site(database, cipher)
    app = live_server.server.config.app
    pages = site_pages(app, ticket_id, form_id, reset)
    audited_routes = {p.route for p in pages}
    # Every page route is audited or skipped with a reason: a new page cannot slip through.
    for route in html_routes(app):
        assert route.path in audited_routes or route.path in SKIP, route.path
    assert len(pages) >= 18

    contexts = await contexts_by_role(
        browser, live_server, color_scheme=scheme, viewport={"width": 1280, "height": 860}
    )
    axe = Axe()
    problems: list[str] = []
    try:
        for site_page in pages:
            _, page = contexts[site_page.role]
            await open_page(page, site_page)
            scheme_now = await page.evaluate(
                "matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'"
            )
            assert scheme_now == scheme
            await page.evaluate(axe.axe_script)  # axe-core as bundled by axe-playwright-python
            problems += describe(site_page.url, await page.evaluate(RUN_AXE, WCAG_TAGS))
    finally:
        for context, _ in contexts.values():
            await context.close()
    heading = f"{len(problems)} violating nodes on {len(pages)} pages ({scheme}):\n"
    assert not problems, heading + "\n".join(problems)


async def settled(page: Page) -> None:
    """Until running animations end: axe reads colours mid fade-in as faded (the toast's)."""
    await page.evaluate("() => Promise.all(document.getAnimations().map(a => a.finished))")


async def audit(page: Page, axe: Axe, where: str) -> list[str]:
    await page.evaluate(axe.axe_script)
    return describe(where, await page.evaluate(RUN_AXE, WCAG_TAGS))


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_error_toast_and_menu_states_have_no_wcag_violations(
    browser: Browser,
    live_server: LiveServer,
    database: Database,
    cipher: PiiCipher,
    scheme: Literal["light", "dark"],
) -> None:
    """What a page shows after an action: field errors, a toast, the phone menu."""
    ticket_id, form_id, _ = await seed_site(database, cipher)
    contexts = await contexts_by_role(
        browser, live_server, color_scheme=scheme, viewport={"width": 1280, "height": 860}
    )
    axe = Axe()
    problems: list[str] = []
    try:
        _, page = contexts[None]
        await page.goto("/auth/login")
        await page.get_by_label("E-mail").fill("nobody@example.com")
        await page.locator("#f-password").fill("wrong-password-1")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_be_visible()
        problems += await audit(page, axe, "login with an error")

        _, page = contexts["customer"]
        await page.goto(f"/new-ticket-form?formId={form_id}")
        await page.get_by_role("button", name="Submit").click()
        await expect(page.locator(".field-error:visible").first).to_be_visible()
        problems += await audit(page, axe, "ticket form with errors")

        await page.goto(f"/tickets/{ticket_id}")
        await page.get_by_label("Your reply").fill("Thank you, that helps.")
        await page.get_by_role("button", name="Send reply").click()
        await expect(page.locator("[data-toast]")).to_be_visible()
        await settled(page)
        problems += await audit(page, axe, "ticket with a toast")

        _, page = contexts["agent"]
        await page.set_viewport_size({"width": 360, "height": 740})
        await page.goto("/agent")
        await page.get_by_role("button", name="Menu").click()
        await expect(page.get_by_role("navigation", name="Main")).to_be_visible()
        problems += await audit(page, axe, "queue at 360 px with the menu open")
    finally:
        for context, _ in contexts.values():
            await context.close()
    assert not problems, f"{len(problems)} violating nodes ({scheme}):\n" + "\n".join(problems)
