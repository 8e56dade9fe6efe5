"""The agent queue's priority and SLA columns, its sort and filters (plain GET forms), and the
ticket page's priority/team/tags form, SLA clock and canned replies, over real HTTP (#15)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx

from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tekudasai.web.service_level_views import duration_text, time_left
from tests.factories import Person, make_person

# The tickets' fixtures: people, an enabled form and filing through the API.
from tests.tickets.conftest import (  # noqa: F401
    FileTicket,
    agent,
    file_ticket,
    form,
    reporter,
)
from tests.tickets.test_service_level_fields import execute, make_policy, make_team, set_due
from tests.web.test_auth_reset_pages import HTML, csrf_of


def rows_of(page: httpx.Response) -> list[int]:
    return [int(n) for n in re.findall(r'<tr data-ticket="(\d+)"', page.text)]


def test_time_left_reads_as_words() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert time_left(now + timedelta(hours=2, minutes=10, seconds=30), now) == (
        "2 h 10 min left",
        False,
    )
    assert time_left(now - timedelta(minutes=35), now) == ("overdue by 35 min", True)
    assert time_left(now - timedelta(seconds=5), now) == ("overdue by 1 min", True)
    assert duration_text(3 * 24 * 60 + 4 * 60) == "3 d 4 h"
    assert duration_text(60) == "1 h"
    assert duration_text(0) == "0 min"


async def test_queue_shows_priority_and_sla_and_sorts_and_filters(
    client: httpx.AsyncClient,
    database: Database,
    reporter: Person,  # noqa: F811
    agent: Person,  # noqa: F811
    file_ticket: FileTicket,  # noqa: F811
) -> None:
    await make_policy(database)
    team = await make_team(database, "desk")
    t = [(await file_ticket(reporter, f"Ticket {n}"))["id"] for n in range(4)]
    now = datetime.now(UTC)
    await set_due(database, t[0], now + timedelta(hours=2, minutes=10, seconds=30))
    await set_due(database, t[2], now - timedelta(minutes=35, seconds=10))
    await execute(database, "UPDATE tickets SET sla_state = 'breached' WHERE id = :id", id=t[2])
    await execute(
        database,
        "UPDATE tickets SET priority = 'urgent', team_id = :team, tags = '{vip}' WHERE id = :id",
        id=t[1],
        team=team,
    )
    client.cookies.set("tk.session_token", agent.token)

    page = await client.get("/agent", headers=HTML)
    assert page.status_code == 200
    assert rows_of(page) == list(reversed(t))  # newest first, as before
    for header in ("Priority", "SLA"):
        assert f'<th scope="col">{header}</th>' in page.text
    assert re.search(
        r'data-priority="urgent"><span class="badge priority-urgent">Urgent<', page.text
    )
    # The SLA cell says the state in words and the time left in a <time>.
    assert 'data-label="SLA" data-sla="running"' in page.text
    assert re.search(r'<time class="small" datetime="[^"]+">2 h 10 min left</time>', page.text)
    assert re.search(r'<span class="badge sla-breached">Breached</span>', page.text)
    assert "overdue by 35 min" in page.text
    # A ticket without an SLA has an empty cell.
    assert page.text.count('data-label="SLA" data-sla=""') == 2

    due = await client.get("/agent", params={"sort": "due"}, headers=HTML)
    assert rows_of(due) == [t[2], t[0], t[1], t[3]]
    assert '<option value="due" selected>' in due.text
    oldest = await client.get("/agent", params={"sort": "oldest"}, headers=HTML)
    assert rows_of(oldest) == t
    by_priority = await client.get("/agent", params={"sort": "priority"}, headers=HTML)
    assert rows_of(by_priority)[0] == t[1]

    assert rows_of(await client.get("/agent", params={"priority": "urgent"}, headers=HTML)) == [
        t[1]
    ]
    assert rows_of(await client.get("/agent", params={"team": team}, headers=HTML)) == [t[1]]
    assert rows_of(await client.get("/agent", params={"tag": " VIP"}, headers=HTML)) == [t[1]]
    # Unknown values fall back rather than fail.
    odd = await client.get("/agent", params={"sort": "nope", "priority": "x"}, headers=HTML)
    assert odd.status_code == 200 and rows_of(odd) == list(reversed(t))


async def test_ticket_page_edits_priority_team_and_tags_with_field_errors(
    client: httpx.AsyncClient,
    database: Database,
    reporter: Person,  # noqa: F811
    agent: Person,  # noqa: F811
    file_ticket: FileTicket,  # noqa: F811
) -> None:
    team = await make_team(database, "network")
    tid = (await file_ticket(reporter))["id"]
    client.cookies.set("tk.session_token", agent.token)
    path = f"/agent/tickets/{tid}"
    page = await client.get(path, headers=HTML)
    assert page.status_code == 200
    assert "No SLA applies to this ticket." in page.text
    assert "Normal priority" in page.text
    csrf = csrf_of(page)

    too_long = {"priority": "high", "team_id": "", "tags": "ok, " + "x" * 60}
    refused = await client.post(
        f"{path}/fields", data=too_long | {"csrf_token": csrf}, headers=HTML
    )
    assert refused.status_code == 400
    assert re.search(r'id="f-tags-err">A tag has 1 to 50 characters<', refused.text)
    assert 'value="ok, ' + "x" * 60 + '"' in refused.text  # what was typed stays
    no_team = {"priority": "high", "team_id": "gone", "tags": ""}
    refused = await client.post(f"{path}/fields", data=no_team | {"csrf_token": csrf}, headers=HTML)
    assert refused.status_code == 400 and 'id="f-team-err">No such team<' in refused.text
    bad_priority = {"priority": "asap", "team_id": "", "tags": ""}
    refused = await client.post(
        f"{path}/fields", data=bad_priority | {"csrf_token": csrf}, headers=HTML
    )
    assert refused.status_code == 400 and 'id="f-priority-err"' in refused.text
    shown = (await client.get(f"/api/tickets/{tid}", headers=agent.auth)).json()["data"]
    assert (shown["priority"], shown["teamId"], shown["tags"]) == ("normal", None, [])

    good = {"priority": "urgent", "team_id": team, "tags": "VPN, office,, vpn"}
    saved = await client.post(f"{path}/fields", data=good | {"csrf_token": csrf}, headers=HTML)
    assert saved.status_code == 303
    shown = (await client.get(f"/api/tickets/{tid}", headers=agent.auth)).json()["data"]
    assert (shown["priority"], shown["teamId"], shown["tags"]) == (
        "urgent",
        team,
        ["vpn", "office"],
    )
    after = await client.get(path, headers=HTML)
    assert "Urgent priority" in after.text and "Team network" in after.text
    assert 'value="vpn, office"' in after.text


async def test_ticket_page_shows_the_sla_clock(
    client: httpx.AsyncClient,
    database: Database,
    reporter: Person,  # noqa: F811
    agent: Person,  # noqa: F811
    file_ticket: FileTicket,  # noqa: F811
) -> None:
    await make_policy(database)
    tid = (await file_ticket(reporter))["id"]
    now = datetime.now(UTC)
    await set_due(database, tid, now + timedelta(hours=1, minutes=30, seconds=30))
    await execute(
        database,
        "UPDATE tickets SET sla_first_response_due_at = :due WHERE id = :id",
        id=tid,
        due=now - timedelta(minutes=20, seconds=10),
    )
    client.cookies.set("tk.session_token", agent.token)
    page = await client.get(f"/agent/tickets/{tid}", headers=HTML)
    assert "<strong>Standard</strong>" in page.text
    assert 'data-sla-target="breached"' in page.text and "overdue by 20 min" in page.text
    assert 'data-sla-target="running"' in page.text and "1 h 30 min left" in page.text


async def test_canned_responses_fill_the_reply_box_without_javascript(
    client: httpx.AsyncClient,
    database: Database,
    cipher: PiiCipher,
    reporter: Person,  # noqa: F811
    agent: Person,  # noqa: F811
    file_ticket: FileTicket,  # noqa: F811
) -> None:
    tid = (await file_ticket(reporter, "Printer jam"))["id"]
    other = await make_person(database, cipher, role="agent")
    body = "Hi {{reporter.name}}, about #{{ticket.id}} ({{ticket.summary}}). {{agent.name}}"
    for owner, title, shared in ((agent, "Mine", False), (other, "Theirs", False)):
        made = await client.post(
            "/api/canned-responses",
            json={"title": title, "body": body, "shared": shared},
            headers=owner.auth,
        )
        assert made.status_code == 200, made.text
    mine = next(
        c
        for c in (await client.get("/api/canned-responses", headers=agent.auth)).json()["data"]
        if c["title"] == "Mine"
    )
    client.cookies.set("tk.session_token", agent.token)
    path = f"/agent/tickets/{tid}"
    page = await client.get(path, headers=HTML)
    assert '<select id="f-canned" name="canned" data-canned>' in page.text
    assert ">Mine</option>" in page.text and ">Theirs</option>" not in page.text
    filled = f"Hi {reporter.name}, about #{tid} (Printer jam). {agent.name}"
    assert f'data-body="{filled}"' in page.text
    chosen = await client.get(path, params={"canned": mine["id"]}, headers=HTML)
    assert f'rows="4">{filled}</textarea>' in chosen.text
    unknown = await client.get(path, params={"canned": "nope"}, headers=HTML)
    assert 'rows="4"></textarea>' in unknown.text
