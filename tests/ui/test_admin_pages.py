"""Admin pages in a real browser: the form builder, the form list rules, banning a user."""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from tekudasai.forms.models import Form
from tests.factories import make_person
from tests.ui.conftest import LiveServer, new_page, screenshot, sign_in

ALL_TYPES = [
    ("Text field", "text-field"),
    ("Text area", "textarea"),
    ("Number", "number"),
    ("Date", "date"),
    ("Checkbox", "checkbox"),
    ("Dropdown", "dropdown"),
    ("Radio buttons", "radio"),
    ("Multi-select", "multi-select"),
    ("File upload", "file-upload"),
    ("Text panel", "text-panel"),
]


def cards(page: Page) -> Any:
    return page.locator("[data-element-list] > li.element-item")


async def card_types(page: Page) -> list[str]:
    return [t.strip() for t in await page.locator(".element-item .element-type").all_inner_texts()]


async def test_form_builder_creates_every_element_type_and_reorders(
    browser: Browser, live_server: LiveServer, database: Any, cipher: Any
) -> None:
    admin = await make_person(database, cipher, role="admin")
    context, page = await new_page(browser, live_server)
    await sign_in(page, admin.email, admin.password)
    await page.goto("/agent/forms")
    await expect(page.get_by_role("heading", name="No forms yet")).to_be_visible()
    await page.get_by_role("link", name="+ New form").click()
    await expect(page.get_by_role("heading", name="New form")).to_be_visible()

    await page.locator("#f-name").fill("Onboarding")
    await page.get_by_label("Description").fill("Everything a new colleague needs.")
    for label, _ in ALL_TYPES:
        await page.get_by_role("button", name=f"+ {label}", exact=True).click()
    await expect(cards(page)).to_have_count(len(ALL_TYPES))
    assert await card_types(page) == [label for label, _ in ALL_TYPES]

    # Edit the first element; the preview follows as you type.
    first = cards(page).nth(0)
    await first.get_by_label("Label").fill("Your name")
    await first.get_by_label("Name (answer key)").fill("full_name")
    await first.get_by_label("Required").check()
    await first.get_by_label("Min length").fill("2")
    await expect(page.locator("[data-preview]")).to_contain_text("Your name")

    # Options of the dropdown, and a showIf on the text area depending on it.
    dropdown = cards(page).nth(5)
    await dropdown.get_by_label("Label", exact=True).fill("Team")
    await dropdown.get_by_label("Name (answer key)").fill("team")
    await dropdown.get_by_label("Option 1 label").fill("Sales")
    await dropdown.get_by_label("Option 1 value").fill("sales")
    await dropdown.get_by_role("button", name="+ Add option").click()
    await dropdown.get_by_label("Option 2 label").fill("Engineering")
    await dropdown.get_by_label("Option 2 value").fill("eng")
    panel = cards(page).nth(9)
    await panel.get_by_label("Content (Markdown)").fill("Welcome **aboard**!")

    # Keyboard reorder: move the text panel (last) to the top with its "up" button.
    for _ in range(len(ALL_TYPES) - 1):
        mover = (
            cards(page)
            .filter(has_text="Text panel")
            .get_by_role("button", name=re.compile(r"^Move .* up$"))
        )
        await mover.focus()
        await page.keyboard.press("Enter")
    types_now = await card_types(page)
    assert types_now[0] == "Text panel"
    # Focus stays on the moved card's controls (at the top, "down" is the one left).
    focused = await page.evaluate(
        "[document.activeElement.dataset.move,"
        " document.activeElement.closest('li').querySelector('.element-type').textContent]"
    )
    assert focused == ["down", "Text panel"]

    # Drag and drop: the date card (now 5th) onto the first card.
    date_card = cards(page).filter(has=page.locator(".element-type", has_text="Date"))
    handle = date_card.locator(".drag-handle")
    target = cards(page).nth(0).locator(".element-head")
    # A drag does not scroll: make room for both ends on screen.
    await page.set_viewport_size({"width": 1280, "height": 4000})
    await page.evaluate("window.scrollTo(0, 0)")
    source_box = await handle.bounding_box()
    target_box = await target.bounding_box()
    assert source_box and target_box
    await page.mouse.move(source_box["x"] + 4, source_box["y"] + 8)
    await page.mouse.down()
    await page.mouse.move(target_box["x"] + 40, target_box["y"] + 10, steps=8)
    await page.mouse.up()
    await page.set_viewport_size({"width": 1280, "height": 860})
    types_now = await card_types(page)
    assert types_now[0] == "Date", types_now
    assert types_now[1] == "Text panel"

    # showIf may only name an earlier field: the multi-select (after the dropdown) uses the team.
    multi = cards(page).filter(has=page.locator(".element-type", has_text="Multi-select"))
    await multi.get_by_label("Show only if").select_option("team")
    await multi.get_by_label("Condition", exact=True).select_option("eq")
    await multi.get_by_label("Condition value").fill("eng")

    # A server-side rule: duplicate names are refused and shown at the element.
    second_text = cards(page).filter(has=page.locator(".element-type", has_text="Text area"))
    await second_text.get_by_label("Name (answer key)").fill("full_name")
    await page.get_by_role("button", name="Create form").click()
    await expect(page.get_by_role("alert")).to_contain_text("duplicate name 'full_name'")
    bad = cards(page).filter(has=page.locator(".element-type", has_text="Text area"))
    await expect(bad.locator(".field-error")).to_contain_text("duplicate name")
    await expect(page.locator("#f-name")).to_have_value("Onboarding")
    await screenshot(page, "form-builder-errors")

    await bad.get_by_label("Name (answer key)").fill("notes")
    await page.get_by_role("button", name="Create form").click()
    await expect(page.locator(".toast")).to_contain_text("Form “Onboarding” saved")
    await expect(cards(page)).to_have_count(len(ALL_TYPES))
    await screenshot(page, "form-builder")
    assert page.js_errors == []  # type: ignore[attr-defined]

    async with database.sessionmaker() as db:
        form = (await db.scalars(select(Form))).one()
    types = [e["type"] for e in form.elements]
    assert sorted(types) == sorted(t for _, t in ALL_TYPES)
    assert types[:2] == ["date", "text-panel"]
    by_type = {e["type"]: e for e in form.elements}
    assert by_type["text-field"]["name"] == "full_name"
    assert by_type["text-field"]["required"] is True
    assert by_type["text-field"]["minLength"] == 2
    assert [o["value"] for o in by_type["dropdown"]["options"]] == ["sales", "eng"]
    assert by_type["multi-select"]["showIf"] == {"field": "team", "op": "eq", "value": "eng"}
    assert by_type["text-panel"]["content"] == "Welcome **aboard**!"

    # The list enforces the API's delete rules: disable first.
    await page.goto("/agent/forms")
    row = page.locator(f"tr[data-form='{form.id}']")
    await expect(row.get_by_role("button", name="Delete")).to_be_disabled()
    await screenshot(page, "form-list")
    await row.get_by_role("button", name="Disable").click()
    await expect(page.locator(".toast")).to_contain_text("is now disabled")
    page.on("dialog", lambda dialog: dialog.accept())
    await row.get_by_role("button", name="Delete").click()
    await expect(page.locator(".toast")).to_contain_text("The form was deleted")
    await expect(page.get_by_role("heading", name="No forms yet")).to_be_visible()
    await context.close()


async def test_admin_bans_a_user_who_then_cannot_sign_in(
    browser: Browser, live_server: LiveServer, database: Any, cipher: Any
) -> None:
    admin = await make_person(database, cipher, role="admin", name="Ada Admin")
    victim = await make_person(database, cipher, name="Bob <i>Banned</i>")

    victim_ctx, victim_page = await new_page(browser, live_server)
    await sign_in(victim_page, victim.email, victim.password)
    await expect(victim_page.locator(".user-name")).to_have_text("Bob <i>Banned</i>")

    admin_ctx, page = await new_page(browser, live_server)
    await sign_in(page, admin.email, admin.password)
    await page.goto("/admin/users")
    row = page.locator(f"tr[data-user='{victim.email}']")
    await expect(row).to_contain_text("Bob <i>Banned</i>")
    await screenshot(page, "admin-users")

    # Exact search through the blind index.
    await page.get_by_label("Exact e-mail or name").fill(victim.email.upper())
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("tbody tr")).to_have_count(1)

    page.on("dialog", lambda dialog: dialog.accept())
    await row.get_by_role("button", name=re.compile(r"^Ban ")).click()
    await expect(page.locator(".toast")).to_contain_text("banned")
    await expect(row.locator(".badge-danger")).to_have_text("Banned")

    # The running session ended, and signing in again is refused.
    await victim_page.goto("/")
    await expect(victim_page).to_have_url(re.compile(r"/auth/login\?next=%2F$"))
    await sign_in(victim_page, victim.email, victim.password)
    await expect(victim_page.get_by_role("alert")).to_contain_text("banned")
    await screenshot(victim_page, "login-banned")

    # Role change and unban.
    await row.get_by_label(re.compile("Role of")).select_option("agent")
    await row.get_by_role("button", name=re.compile(r"^Save role")).click()
    await expect(page.locator(".toast")).to_contain_text("Role updated")
    await row.get_by_role("button", name=re.compile(r"^Unban ")).click()
    await expect(page.locator(".toast")).to_contain_text("unbanned")
    await sign_in(victim_page, victim.email, victim.password)
    await expect(victim_page.get_by_role("link", name="All tickets")).to_be_visible()
    assert page.js_errors == []  # type: ignore[attr-defined]
    await admin_ctx.close()
    await victim_ctx.close()
