"""/agent/reports: the figures, the charts with their tables, field errors, agents only."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx

from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.factories import make_form, make_person
from tests.reports.test_summary_api import ELEMENTS, insert_tickets
from tests.web.test_auth_reset_pages import HTML

PAGE = "/agent/reports"


async def test_agent_sees_figures_charts_and_tables(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    admin = await make_person(database, cipher, role="admin")
    agent = await make_person(database, cipher, role="agent", name="Aroha Agent")
    customer = await make_person(database, cipher)
    form = await make_form(database, admin, elements=ELEMENTS)
    day = datetime(2026, 5, 4, 9, tzinfo=UTC)
    rows = [
        {"created": day, "first": day + timedelta(minutes=30), "assignee": agent.user.id,
         "status": "resolved", "resolved": day + timedelta(hours=5), "sla": "met"},
        {"created": day + timedelta(days=1), "first": day + timedelta(days=1, minutes=90),
         "assignee": agent.user.id, "status": "open", "sla": "breached"},
        {"created": day + timedelta(days=2), "status": "open"},
    ]  # fmt: skip
    await insert_tickets(database, form["id"], customer.user.id, rows)

    client.cookies.set("tk.session_token", agent.token)
    page = await client.get(PAGE, params={"from": "2026-05-03", "to": "2026-05-09"}, headers=HTML)
    assert page.status_code == 200, page.text[:500]
    text = page.text
    figures = dict(re.findall(r'data-figure="([\w-]+)">([^<]+)<', text))
    assert figures["created"] == "3" and figures["resolved"] == "1" and figures["backlog"] == "2"
    assert figures["first-response"] == "1 h"  # p50 of 30 and 90 minutes
    # One resolution of 5 h, read back from its histogram bucket: within 5 % of it.
    shown = re.fullmatch(r"(\d+) h(?: (\d+) min)?", figures["resolution"])
    assert shown, figures["resolution"]
    assert abs(int(shown[1]) * 60 + int(shown[2] or 0) - 300) <= 0.05 * 300
    assert "50.0 %" in figures["sla"]
    # Each chart is an image with a title and description, and its numbers are in a table.
    assert text.count('role="img"') == 4 and text.count("<desc id=") == 4
    assert "7 days from 2026-05-03 to 2026-05-09: 3 tickets created and 1 resolved." in text
    assert text.count("<details>") == 3
    assert '<td data-label="Day">2026-05-08</td><td data-label="Created">0</td>' in text
    assert "Aroha Agent" in text and 'aria-current="page">Reports' in text
    assert 'value="2026-05-03"' in text

    refused = await client.get(
        PAGE, params={"from": "2026-05-09", "to": "2026-05-01"}, headers=HTML
    )
    assert refused.status_code == 400 and "From: after `to`" in refused.text
    assert 'aria-invalid="true"' in refused.text and "data-figures" not in refused.text
    bad = await client.get(PAGE, params={"to": "soon"}, headers=HTML)
    assert bad.status_code == 400 and "To: not a date" in bad.text

    client.cookies.set("tk.session_token", customer.token)
    assert (await client.get(PAGE, headers=HTML)).status_code == 404
