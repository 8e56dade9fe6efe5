"""/admin/service-levels and /agent/canned over real HTTP: create, refuse with the field
named, delete; admins only for service levels, agents for replies."""

from __future__ import annotations

import httpx

from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.factories import make_person
from tests.web.test_auth_reset_pages import HTML, csrf_of

LEVELS = "/admin/service-levels"


async def test_admin_creates_a_team_and_a_calendar_and_sees_field_errors(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    admin = await make_person(database, cipher, role="admin")
    agent = await make_person(database, cipher, role="agent")
    client.cookies.set("tk.session_token", admin.token)
    page = await client.get(LEVELS, headers=HTML)
    assert page.status_code == 200 and "No teams yet" in page.text
    csrf = csrf_of(page)

    team = {"team_name": "Hardware", "member_ids": [agent.user.id], "assignment": "round_robin"}
    made = await client.post(LEVELS + "/teams", data=team | {"csrf_token": csrf}, headers=HTML)
    assert made.status_code == 303
    teams = (await client.get("/api/teams")).json()["data"]
    assert [(t["name"], t["memberIds"], t["assignment"]) for t in teams] == [
        ("Hardware", [agent.user.id], "round_robin")
    ]

    bad = {
        "calendar_name": "Office",
        "timezone": "Mars/Base",
        "hours_mon": "17:00-09:00",
        "hours_tue": "09:00-12:00, 11:00-17:00",
        "holidays": "2026-13-01",
        "csrf_token": csrf,
    }
    refused = await client.post(LEVELS + "/calendars", data=bad, headers=HTML)
    assert refused.status_code == 400
    for shown in ("not an IANA time zone", "hours.mon[0]", "hours.tue[1]", "Mars/Base"):
        assert shown in refused.text
    assert (await client.get("/api/calendars")).json()["data"] == []

    good = bad | {"timezone": "Europe/Berlin", "hours_mon": "09:00-17:00", "hours_tue": ""}
    good["holidays"] = "2026-12-25\n2026-12-26"
    assert (await client.post(LEVELS + "/calendars", data=good, headers=HTML)).status_code == 303
    (calendar,) = (await client.get("/api/calendars")).json()["data"]
    assert calendar["hours"]["mon"] == [["09:00", "17:00"]] and calendar["hours"]["tue"] == []
    listed = await client.get(LEVELS, headers=HTML)
    assert "Europe/Berlin" in listed.text and "Hardware" in listed.text

    gone = await client.post(
        f"{LEVELS}/calendars/{calendar['id']}/delete", data={"csrf_token": csrf}, headers=HTML
    )
    assert gone.status_code == 303 and (await client.get("/api/calendars")).json()["data"] == []

    client.cookies.set("tk.session_token", agent.token)
    assert (await client.get(LEVELS, headers=HTML)).status_code == 404


async def test_agents_keep_canned_replies_and_only_admins_share(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    agent = await make_person(database, cipher, role="agent")
    customer = await make_person(database, cipher)
    client.cookies.set("tk.session_token", agent.token)
    page = await client.get("/agent/canned", headers=HTML)
    assert page.status_code == 200 and "No canned replies yet" in page.text
    assert 'name="shared"' not in page.text
    csrf = csrf_of(page)

    empty = {"title": "Reset", "body": "  ", "csrf_token": csrf}
    assert (await client.post("/agent/canned", data=empty, headers=HTML)).status_code == 400
    shared = {"title": "Reset", "body": "Hi {{reporter.name}}", "shared": "on", "csrf_token": csrf}
    denied = await client.post("/agent/canned", data=shared, headers=HTML)
    assert denied.status_code == 403 and "Only admins" in denied.text
    mine = shared | {"shared": ""}
    assert (await client.post("/agent/canned", data=mine, headers=HTML)).status_code == 303
    (reply,) = (await client.get("/api/canned-responses")).json()["data"]
    assert reply["body"] == "Hi {{reporter.name}}" and reply["shared"] is False
    deleted = await client.post(
        f"/agent/canned/{reply['id']}/delete", data={"csrf_token": csrf}, headers=HTML
    )
    assert deleted.status_code == 303
    assert (await client.get("/api/canned-responses")).json()["data"] == []

    client.cookies.set("tk.session_token", customer.token)
    assert (await client.get("/agent/canned", headers=HTML)).status_code == 404
