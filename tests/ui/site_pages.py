"""Every HTML page of the web UI, derived from the app's routes, with the role to visit it as.

The accessibility and phone tests visit this list. It is built from the GET routes whose endpoint
lives in `tekudasai.web` (so a page added later is audited without editing the tests); path
parameters are filled from seeded demo data, and a route this module cannot fill fails the tests
instead of being skipped silently. Only redirects, downloads and non-HTML routes are skipped, each
with its reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from playwright.async_api import Browser, BrowserContext, Page
from sqlalchemy import func, select, update

from tekudasai.accounts import service as accounts_service
from tekudasai.accounts import tokens
from tekudasai.automations import service as automations
from tekudasai.canned import service as canned
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tekudasai.seed import DEMO_ACCOUNTS, seed_demo
from tekudasai.sla import calendars, policies
from tekudasai.sla.models import SlaPolicy
from tekudasai.teams import service as teams
from tekudasai.teams.models import Team
from tekudasai.tickets.models import Ticket, TicketComment
from tekudasai.web.deps import page_admin, page_agent, page_user
from tekudasai.webhooks import service as webhooks
from tests.ui.conftest import LiveServer, sign_in

# Routes that are not pages to audit, each with why.
SITE_WEBHOOK_ID = "site-webhook"
SITE_CALENDAR_ID = "site-calendar"
SITE_POLICY_ID = "site-policy"
SITE_AUTOMATION_ID = "site-automation"
SITE_TEAM_ID = "site-team"
SKIP: dict[str, str] = {
    "/manifest.webmanifest": "JSON web manifest, not HTML (tests/ui/test_installable.py checks it)",
    "/sw.js": "the service worker script, not HTML (tests/ui/test_installable.py runs it)",
    "/app": "a redirect by role (the installed app's start URL); its targets are audited",
    "/auth/two-factor": "shown only while a sign-in waits for its second factor (else a "
    "redirect); audited in that state by tests/ui/test_security_page.py",
}

# Who visits a page, by its page dependency; routes without one are visited signed out.
ROLE_BY_DEPENDENCY = {page_admin: "admin", page_agent: "agent", page_user: "customer"}
ACCOUNTS = {
    "admin": DEMO_ACCOUNTS[0],
    "agent": DEMO_ACCOUNTS[1],
    "customer": DEMO_ACCOUNTS[3],  # Bob: his tickets have a conversation
}


@dataclass(frozen=True)
class SitePage:
    route: str  # the route's path template
    url: str  # what the browser opens
    role: str | None  # "admin", "agent", "customer" or None (signed out)
    heading: str  # text the page's h1 must contain: proves the page (not a redirect) was audited

    @property
    def slug(self) -> str:
        role = self.role or "anon"
        url = re.sub(r"token=[\w-]{20,}", "token=valid", self.url)  # stable file names
        return f"{role}-{re.sub(r'[^a-z0-9]+', '-', url.lower()).strip('-') or 'home'}"


@dataclass
class SeededSite:
    ticket_id: int
    form_id: str
    reset_token: str
    pages: list[SitePage]


def _role_of(dependant: Dependant) -> str | None:
    for dep in dependant.dependencies:
        if dep.call in ROLE_BY_DEPENDENCY:
            return ROLE_BY_DEPENDENCY[dep.call]  # type: ignore[index]
        found = _role_of(dep)
        if found:
            return found
    return None


@dataclass(frozen=True)
class PageRoute:
    path: str
    role: str | None


def html_routes(app: FastAPI) -> list[PageRoute]:
    """GET routes served by the web package (pages), in registration order."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or "GET" not in (context.methods or ()):
            continue
        module = route.endpoint.__module__
        if module != "tekudasai.web" and not module.startswith("tekudasai.web."):
            continue
        found.append(PageRoute(context.path_format or route.path, _role_of(route.dependant)))
    return found


async def seed_site(database: Database, cipher: PiiCipher) -> tuple[int, str, str]:
    """Demo data plus what some pages need: a re-opened ticket form, a token, a reset link."""
    async with database.sessionmaker() as db, db.begin():
        await seed_demo(db, cipher)
        customer = await accounts_service.find_by_email(db, cipher, ACCOUNTS["customer"].email)
        assert customer is not None
        ticket = (
            await db.execute(
                select(Ticket)
                .where(Ticket.reporter_id == customer.id, Ticket.status == "in_progress")
                .order_by(Ticket.id)
            )
        ).scalar_one()
        # Long unbroken words are what push a phone page sideways: one in the summary, one in a
        # comment, one in an internal note.
        long_word = "https://intranet.example.com/" + "very-long-path-segment-" * 6 + "end"
        await db.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id)
            .values(form_open=True, summary=f"Cannot send e-mail to {long_word}")
        )
        agent = await accounts_service.find_by_email(db, cipher, ACCOUNTS["agent"].email)
        assert agent is not None
        for internal in (False, True):
            db.add(
                TicketComment(
                    ticket_id=ticket.id,
                    author_id=agent.id,
                    body=f"The bounce names {long_word} as the culprit.",
                    internal=internal,
                )
            )
        await tokens.create_token(
            db,
            user_id=customer.id,
            name="Nightly export",
            scopes=["tickets:read"],
            expires_in_days=90,
        )
        # Service levels and replies: a row in each table of their pages.
        team = await teams.create_team(db, name="Hardware", member_ids=[], assignment="round_robin")
        # A fixed id for its edit page (members are added after: they reference it).
        await db.execute(update(Team).where(Team.id == team["id"]).values(id=SITE_TEAM_ID))
        team = await teams.update_team(db, SITE_TEAM_ID, {"memberIds": [agent.id]})
        calendar = await calendars.create_calendar(
            db,
            name="Wellington office",
            timezone="Pacific/Auckland",
            hours={"mon": [["09:00", "12:00"], ["13:00", "17:00"]]},
            holidays=["2026-12-25"],
            holiday_country="NZ",
        )
        calendar.id = SITE_CALENDAR_ID
        await db.flush()
        # An SLA policy and an automation, for their rows and edit pages.
        policy = await policies.create_policy(
            db,
            {
                "name": "Urgent hardware",
                "position": 1,
                "conditions": {"priority": ["urgent"], "teamId": [team["id"]]},
                "calendarId": SITE_CALENDAR_ID,
                "firstResponseMinutes": 60,
                "resolutionMinutes": 480,
            },
        )
        policy.id = SITE_POLICY_ID
        rule = await automations.create_automation(
            db,
            {
                "name": "Hardware round robin",
                # Disabled: other tests file tickets on this site and expect them unassigned.
                "enabled": False,
                "event": "ticket.created",
                "conditions": [{"field": "formId", "op": "in", "value": [ticket.form_id]}],
                "actions": [
                    {"type": "set_team", "teamId": team["id"]},
                    {"type": "assign", "strategy": "round_robin"},
                ],
            },
        )
        rule.id = SITE_AUTOMATION_ID
        await db.flush()
        await canned.create(
            db,
            owner_id=agent.id,
            is_admin=False,
            title="Printer reset",
            body=f"Hello {{{{reporter.name}}}}, please follow {long_word}",
            shared=False,
        )
        # A webhook, for its deliveries page (a loopback receiver: allowed here only).
        hook, _ = await webhooks.create_webhook(
            db,
            cipher,
            url="http://127.0.0.1:9/hooks/tickets",
            events=["ticket.created"],
            created_by=None,
            allow_private=True,
        )
        hook.id = SITE_WEBHOOK_ID
        await db.flush()
        # The ticket's service levels (#15): priority, tags and an SLA clock with one target
        # overdue and one running, so the queue and ticket pages show their badges.
        policy = SlaPolicy(
            name="Standard",
            conditions={},
            calendar_id=calendar.id,
            first_response_minutes=60,
            resolution_minutes=480,
        )
        db.add(policy)
        await db.flush()
        await db.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id)
            .values(
                priority="urgent",
                tags=["vpn", "printer"],
                sla_policy_id=policy.id,
                sla_state="breached",
                sla_first_response_due_at=func.now() - timedelta(minutes=35),
                sla_resolution_due_at=func.now() + timedelta(hours=2, minutes=10),
                sla_due_at=func.now() + timedelta(hours=2, minutes=10),
            )
        )
        reset = await accounts_service.issue_token(
            db, user_id=customer.id, purpose=accounts_service.RESET_PASSWORD
        )
        return ticket.id, ticket.form_id, reset


def site_pages(app: FastAPI, ticket_id: int, form_id: str, reset_token: str) -> list[SitePage]:
    """One or more visits per page route; raises when a route's parameters cannot be filled."""
    params: dict[str, str] = {
        "ticket_id": str(ticket_id),
        "form_id": form_id,
        "webhook_id": SITE_WEBHOOK_ID,
        "calendar_id": SITE_CALENDAR_ID,
        "policy_id": SITE_POLICY_ID,
        "automation_id": SITE_AUTOMATION_ID,
        "team_id": SITE_TEAM_ID,
    }
    # Extra states of one route worth auditing too: path -> [(url, heading)].
    variants: dict[str, list[tuple[str, str]]] = {
        "/agent/forms/{form_id}": [
            (f"/agent/forms/{form_id}", ""),
            ("/agent/forms/new", "New form"),
        ],
        "/new-ticket-form": [(f"/new-ticket-form?formId={form_id}", "")],
        "/auth/reset-password": [
            (f"/auth/reset-password?token={reset_token}", "Set a new password"),
            ("/auth/reset-password?token=spent", "Link not valid"),
        ],
        "/auth/verify": [("/auth/verify?token=spent", "Link not valid")],
        # The report with its period refused: the form shows the field errors.
        "/agent/reports": [
            ("/agent/reports", "Reports"),
            ("/agent/reports?from=2026-03-08&to=2026-03-01", "Reports"),
        ],
    }
    pages: list[SitePage] = []
    unfilled: list[str] = []
    for route in html_routes(app):
        if route.path in SKIP:
            continue
        role = route.role
        if route.path in variants:
            for url, heading in variants[route.path]:
                pages.append(SitePage(route.path, url, role, heading))
            continue
        names = re.findall(r"{(\w+)(?::\w+)?}", route.path)
        missing = [n for n in names if n not in params]
        if missing:
            unfilled.append(f"{route.path} (no value for {', '.join(missing)})")
            continue
        url = re.sub(r"{(\w+)(?::\w+)?}", lambda m: params[m.group(1)], route.path)
        pages.append(SitePage(route.path, url, role, ""))
    if unfilled:
        raise AssertionError(
            "pages the audit cannot visit: give their parameters in tests/ui/site_pages.py "
            "(or skip them there with a reason): " + "; ".join(unfilled)
        )
    # The HTML error page is rendered for every unknown path.
    pages.append(SitePage("(404)", "/no-such-page", "customer", "Page not found"))
    return pages


async def contexts_by_role(
    browser: Browser, live_server: LiveServer, **options: Any
) -> dict[str | None, tuple[BrowserContext, Page]]:
    """A signed-in browser context per role (and one signed out), created with `options`."""
    made: dict[str | None, tuple[BrowserContext, Page]] = {}
    for role in (None, "customer", "agent", "admin"):
        context = await browser.new_context(base_url=live_server.url, **options)
        page = await context.new_page()
        page.set_default_timeout(15_000)
        if role is not None:
            account = ACCOUNTS[role]
            await sign_in(page, account.email, account.password)
            await page.wait_for_url(lambda url: "/auth/login" not in url)
        made[role] = (context, page)
    return made


async def open_page(page: Page, site_page: SitePage) -> None:
    """Open the page, wait for its scripts, and check it is the page meant (not a redirect)."""
    response = await page.goto(site_page.url)
    assert response is not None
    await page.wait_for_load_state("networkidle")
    path = page.url.split("://", 1)[1].split("/", 1)[1]
    assert "/" + path == site_page.url, f"{site_page.url} ended on /{path}"
    # The tab's title: never markup that slipped into the title block (a ticket's title may
    # be as long as its summary).
    title = await page.title()
    assert title.endswith("Te Kudasai") and "<" not in title, f"{site_page.url}: {title[:120]!r}"
    if site_page.heading:
        h1 = await page.locator("h1").first.inner_text()
        assert site_page.heading in h1, f"{site_page.url}: h1 is {h1!r}"
