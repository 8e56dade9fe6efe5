"""The customer files a ticket through a conditional form with an upload; an agent works it;
the customer sees the reply and the status. Real server, real database, real Chromium."""

from __future__ import annotations

import re
import struct
import zlib
from typing import Any

from playwright.async_api import Browser, expect

from tests.factories import Person, make_form, make_person
from tests.ui.conftest import LiveServer, new_page, screenshot, sign_in, sign_up

FORM_NAME = "Hardware & software help"


def tiny_png() -> bytes:
    """A valid 1x1 PNG (uploads are typed by their bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def options(*values: str) -> list[dict[str, str]]:
    return [{"label": v.title(), "value": v} for v in values]


ELEMENTS: list[dict[str, Any]] = [
    {"type": "text-panel", "content": "Tell us **everything** <script>alert(1)</script>"},
    {
        "type": "dropdown",
        "name": "category",
        "label": "Category",
        "required": True,
        "options": options("hardware", "software"),
    },
    {
        "type": "text-field",
        "name": "serial",
        "label": "Serial number",
        "required": True,
        "pattern": "[A-Z]{2}[0-9]{4}",
        "showIf": {"field": "category", "op": "eq", "value": "hardware"},
    },
    {
        "type": "textarea",
        "name": "details",
        "label": "What happened?",
        "required": True,
        "minLength": 10,
    },
    {"type": "number", "name": "machines", "label": "Machines affected", "min": 1, "max": 100},
    {"type": "date", "name": "since", "label": "Since when"},
    {
        "type": "radio",
        "name": "urgency",
        "label": "Urgency",
        "required": True,
        "options": options("low", "high"),
    },
    {
        "type": "multi-select",
        "name": "systems",
        "label": "Systems",
        "options": options("linux", "mac"),
    },
    {
        "type": "text-field",
        "name": "contact",
        "label": "Other contact e-mail",
        "format": "email",
        "showIf": {"field": "urgency", "op": "eq", "value": "high"},
    },
    {"type": "file-upload", "name": "screenshot", "label": "Screenshot", "required": True},
    {"type": "checkbox", "name": "consent", "label": "Support may contact me", "required": True},
]


async def it_form(database: Any, creator: Person) -> dict[str, Any]:
    return await make_form(
        database,
        creator,
        name=FORM_NAME,
        description="Anything broken? Start here.",
        elements=ELEMENTS,
    )


async def test_customer_files_agent_answers_customer_sees(
    browser: Browser, live_server: LiveServer, database: Any, cipher: Any
) -> None:
    admin = await make_person(database, cipher, role="admin")
    agent = await make_person(database, cipher, role="agent", name="Agnes Agent")
    await it_form(database, admin)

    # -- the customer signs up and files a ticket ------------------------------------------
    customer_ctx, page = await new_page(browser, live_server)
    await sign_up(page, "Carla Customer", "carla@example.test", "carla-password")
    await expect(page.get_by_role("heading", name="No tickets yet")).to_be_visible()
    await screenshot(page, "my-tickets-empty")

    await page.get_by_role("link", name="File your first ticket").click()
    await expect(page).to_have_url(re.compile(r"/new-ticket$"))
    await screenshot(page, "new-ticket-pick-form")
    await page.get_by_role("link", name=re.compile(FORM_NAME)).click()
    await expect(page.get_by_role("heading", name=FORM_NAME)).to_be_visible()
    # Sanitised Markdown: bold kept, the script tag never becomes an element.
    await expect(page.locator(".text-panel strong")).to_have_text("everything")
    assert await page.locator(".text-panel script").count() == 0

    serial = page.get_by_label("Serial number")
    contact = page.get_by_label("Other contact e-mail")
    await expect(serial).to_be_hidden()
    await page.get_by_label("Category").select_option("hardware")
    await expect(serial).to_be_visible()

    # Client-side hints use the server's words.
    await page.get_by_role("button", name="Submit ticket").click()
    details_error = page.locator("[data-error-for=details]")
    await expect(details_error).to_have_text("This field is required")
    await serial.fill("nope")
    await page.get_by_role("button", name="Submit ticket").click()
    await expect(page.locator("[data-error-for=serial]")).to_have_text(
        "Does not have the required format"
    )

    await page.get_by_label("Summary").fill("Laptop does not boot")
    await serial.fill("AB1234")
    await page.get_by_label("What happened?").fill("Black screen after the update.")
    await page.get_by_label("Machines affected").fill("2")
    await page.get_by_label("Since when").fill("2026-11-20")
    await expect(contact).to_be_hidden()
    await page.get_by_label("High").check()
    await expect(contact).to_be_visible()
    await contact.fill("carla.private@example.test")
    await page.get_by_label("Linux").check()
    await page.get_by_label("Support may contact me").check()
    await page.get_by_label("Screenshot").set_input_files(
        files=[{"name": "screen.png", "mimeType": "image/png", "buffer": tiny_png()}]
    )
    await expect(page.locator(".el-file-upload .upload-status")).to_have_text(
        "Attached: screen.png"
    )
    await expect(page.locator(".el-file-upload progress")).to_have_attribute("value", "100")
    await screenshot(page, "new-ticket-form")
    await page.get_by_role("button", name="Submit ticket").click()

    await expect(page).to_have_url(re.compile(r"/tickets/\d+$"))
    ticket_url = page.url
    ticket_id = ticket_url.rsplit("/", 1)[1]
    await expect(page.locator(".toast")).to_contain_text(f"Ticket #{ticket_id} filed")
    await expect(page.get_by_test_id("status")).to_have_text("Open")
    answers = page.locator(".answers")
    await expect(answers).to_contain_text("Hardware")
    await expect(answers).to_contain_text("AB1234")
    await expect(answers).to_contain_text("carla.private@example.test")
    await expect(answers.get_by_role("link", name="screen.png")).to_be_visible()
    await screenshot(page, "ticket-customer-open")

    # -- the agent picks it up, notes, replies, resolves ------------------------------------
    agent_ctx, agent_page = await new_page(browser, live_server)
    await sign_in(agent_page, agent.email, agent.password)
    await agent_page.goto("/agent")
    row = agent_page.locator(f"tr[data-ticket='{ticket_id}']")
    await expect(row).to_contain_text("Laptop does not boot")
    await expect(row).to_contain_text("Unassigned")
    await screenshot(agent_page, "agent-queue")
    await row.get_by_role("button", name=f"Assign to me (ticket {ticket_id})").click()
    await expect(agent_page.locator(".toast")).to_contain_text(f"Ticket #{ticket_id} is yours")
    await expect(row).to_contain_text("Agnes Agent")

    await row.get_by_role("link", name="Laptop does not boot").click()
    await expect(agent_page.get_by_role("heading", name="Reporter")).to_be_visible()
    await expect(agent_page.locator("dl.meta")).to_contain_text("carla@example.test")
    await agent_page.get_by_label("Message").fill("Probably the SSD, checking stock.")
    await agent_page.get_by_role("button", name="Add internal note").click()
    await expect(agent_page.locator(".comment-internal")).to_contain_text("checking stock")
    await agent_page.get_by_label("Message").fill("We replaced the SSD; please try again.")
    await agent_page.get_by_role("button", name="Send public reply").click()
    await expect(agent_page.locator(".toast")).to_contain_text("Reply sent")
    await agent_page.get_by_label("Status").select_option("resolved")
    await agent_page.get_by_role("button", name="Update status").click()
    await expect(agent_page.locator(".page-header .status")).to_have_text("Resolved")
    log = agent_page.locator("ol.log")
    await expect(log).to_contain_text("Ticket status updated from open to resolved")
    await expect(log).to_contain_text("Internal note added")
    await expect(log).to_contain_text("Ticket assigned")
    await screenshot(agent_page, "agent-ticket")
    assert agent_page.js_errors == []  # type: ignore[attr-defined]

    # -- the customer sees the public reply and the status, not the note -------------------
    await page.goto(ticket_url)
    await expect(page.get_by_test_id("status")).to_have_text("Resolved")
    conversation = page.locator("ol.timeline")
    await expect(conversation).to_contain_text("We replaced the SSD; please try again.")
    await expect(conversation).not_to_contain_text("checking stock")
    await expect(page.locator("ol.log")).not_to_contain_text("Internal note")
    await expect(page.locator("dl.meta")).to_contain_text("Agnes Agent")
    await screenshot(page, "ticket-customer-resolved")

    # A reply to a resolved ticket re-opens it.
    await page.get_by_label("Your reply").fill("It works again, thanks!")
    await page.get_by_role("button", name="Send reply").click()
    await expect(page.get_by_test_id("status")).to_have_text("Open")
    await page.goto("/")
    await expect(page.locator("table")).to_contain_text("Laptop does not boot")
    await screenshot(page, "my-tickets")
    assert page.js_errors == []  # type: ignore[attr-defined]
    await agent_ctx.close()
    await customer_ctx.close()


async def test_server_errors_shown_next_to_fields_without_javascript(
    browser: Browser, live_server: LiveServer, database: Any, cipher: Any
) -> None:
    admin = await make_person(database, cipher, role="admin")
    customer = await make_person(database, cipher)
    form = await it_form(database, admin)
    context = await browser.new_context(base_url=live_server.url, java_script_enabled=False)
    page = await context.new_page()
    await sign_in(page, customer.email, customer.password)

    async def without_browser_checks(route: Any) -> None:
        # As a browser without constraint validation: everything reaches the server.
        response = await route.fetch()
        body = (await response.text()).replace(
            "data-dynamic-form>", "data-dynamic-form novalidate>"
        )
        await route.fulfill(response=response, body=body)

    await page.route(re.compile(r".*/new-ticket-form\?formId=.*"), without_browser_checks)
    await page.goto(f"/new-ticket-form?formId={form['id']}")
    await page.get_by_label("Category").select_option("hardware")
    await page.get_by_label("Serial number").fill("bad serial")
    await page.get_by_label("What happened?").fill("short")
    await page.get_by_label("Machines affected").fill("500")
    await page.get_by_role("button", name="Submit ticket").click()

    await expect(page.get_by_role("alert")).to_contain_text("Please correct the marked fields")
    await expect(page.locator("#f-summary-error")).to_contain_text("Summary is required")
    await expect(page.locator("[data-error-for=serial]")).to_have_text(
        "Does not have the required format"
    )
    await expect(page.locator("[data-error-for=details]")).to_have_text(
        "Must be at least 10 characters"
    )
    await expect(page.locator("[data-error-for=machines]")).to_have_text("Must be at most 100")
    await expect(page.locator("[data-error-for=urgency]")).to_have_text("This field is required")
    # The user's input is kept.
    await expect(page.get_by_label("Serial number")).to_have_value("bad serial")
    await expect(page.get_by_label("Machines affected")).to_have_value("500")
    await expect(page.get_by_label("Category")).to_have_value("hardware")
    await screenshot(page, "new-ticket-server-errors")
    await context.close()


async def test_customer_edits_answers_after_agent_reopens_form(
    browser: Browser, live_server: LiveServer, database: Any, cipher: Any
) -> None:
    from tekudasai.tickets import service as tickets_service

    admin = await make_person(database, cipher, role="admin")
    agent = await make_person(database, cipher, role="agent")
    customer = await make_person(database, cipher)
    form = await make_form(
        database,
        admin,
        name="Access request",
        elements=[
            {"type": "text-field", "name": "system", "label": "System", "required": True},
            {"type": "number", "name": "days", "label": "Days needed", "min": 1},
        ],
    )
    async with database.sessionmaker() as db, db.begin():
        ticket = await tickets_service.create_ticket(
            db,
            reporter_id=customer.user.id,
            form_id=form["id"],
            summary="Need VPN access",
            form_response={"system": "VPN", "days": "3"},
        )

    agent_ctx, agent_page = await new_page(browser, live_server)
    await sign_in(agent_page, agent.email, agent.password)
    await agent_page.goto(f"/agent/tickets/{ticket.id}")
    await agent_page.get_by_role("button", name="Re-open form for the customer").click()
    await expect(agent_page.locator(".toast")).to_contain_text("can now edit the answers")
    await expect(
        agent_page.get_by_role("button", name="Re-open form for the customer")
    ).to_be_disabled()

    context, page = await new_page(browser, live_server)
    await sign_in(page, customer.email, customer.password)
    await page.goto(f"/tickets/{ticket.id}")
    await expect(page.get_by_role("status").filter(has_text="update your answers")).to_be_visible()
    await page.get_by_role("link", name="Edit answers").first.click()
    await expect(page.get_by_label("System")).to_have_value("VPN")
    await page.get_by_label("Days needed").fill("0")
    await page.get_by_role("button", name="Save answers").click()
    await expect(page.locator("[data-error-for=days]")).to_have_text("Must be at least 1")
    await page.get_by_label("Days needed").fill("10")
    await page.get_by_role("button", name="Save answers").click()
    await expect(page.locator(".toast")).to_contain_text("answers were updated")
    await expect(page.locator(".answers")).to_contain_text("10")
    await expect(page.get_by_role("link", name="Edit answers")).to_have_count(0)
    # Once saved the form is closed again: the edit page sends the customer back.
    await page.goto(f"/tickets/{ticket.id}/edit")
    await expect(page).to_have_url(re.compile(rf"/tickets/{ticket.id}$"))
    await expect(page.locator(".toast")).to_contain_text("can no longer be edited")
    await agent_page.reload()
    await expect(agent_page.locator("ol.log")).to_contain_text(
        "Form response updated by the reporter"
    )
    assert page.js_errors == []  # type: ignore[attr-defined]
    await agent_ctx.close()
    await context.close()
