"""SLA policies and calendar editing on /admin/service-levels over real HTTP: create, refuse
with the field named next to it, edit, delete; admins only."""

from __future__ import annotations

import httpx

from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.factories import make_form, make_person
from tests.web.test_auth_reset_pages import HTML, csrf_of

LEVELS = "/admin/service-levels"
ELEMENTS = [{"id": "e1", "type": "textarea", "name": "what", "label": "What?"}]


async def test_admin_creates_edits_and_deletes_a_policy(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    admin = await make_person(database, cipher, role="admin")
    agent = await make_person(database, cipher, role="agent")
    form = await make_form(database, admin, elements=ELEMENTS, name="Printers")
    client.cookies.set("tk.session_token", admin.token)
    page = await client.get(LEVELS, headers=HTML)
    assert page.status_code == 200 and "No SLA policies yet" in page.text
    assert "<title>Service levels · Te Kudasai</title>" in page.text  # nothing else in it
    assert page.text.count(f'name="csrf_token" value="{csrf_of(page)}"') == page.text.count(
        "<form "
    )
    assert "Printers" in page.text  # offered as a condition
    csrf = csrf_of(page)
    calendar = {"calendar_name": "Office", "timezone": "Europe/Berlin", "hours_mon": "09:00-17:00"}
    made = await client.post(
        LEVELS + "/calendars", data=calendar | {"csrf_token": csrf}, headers=HTML
    )
    assert made.status_code == 303
    (cal,) = (await client.get("/api/calendars")).json()["data"]

    bad = {
        "policy_name": "  ",
        "position": "first",
        "priority": ["urgent"],
        "calendar_id": "",
        "first_response_minutes": "0",
        "resolution_minutes": "60",
        "csrf_token": csrf,
    }
    refused = await client.post(LEVELS + "/policies", data=bad, headers=HTML)
    assert refused.status_code == 400
    assert 'id="f-position-error">a whole number<' in refused.text
    bad["position"] = "1"
    refused = await client.post(LEVELS + "/policies", data=bad, headers=HTML)
    assert refused.status_code == 400
    assert 'id="f-policy_name-error">is empty<' in refused.text
    assert 'id="f-calendar_id-error">no such calendar<' in refused.text
    assert 'id="f-first_response_minutes-error">between 1 and' in refused.text
    assert (await client.get("/api/sla-policies")).json()["data"] == []

    good = bad | {
        "policy_name": "Urgent printers",
        "calendar_id": cal["id"],
        "first_response_minutes": "30",
        "form_ids": [form["id"]],
    }
    assert (await client.post(LEVELS + "/policies", data=good, headers=HTML)).status_code == 303
    (policy,) = (await client.get("/api/sla-policies")).json()["data"]
    assert policy["conditions"] == {"priority": ["urgent"], "formId": [form["id"]]}
    assert (policy["calendarId"], policy["firstResponseMinutes"], policy["position"]) == (
        cal["id"], 30, 1
    )  # fmt: skip
    listed = await client.get(LEVELS, headers=HTML)
    assert "Urgent printers" in listed.text and "Priority: Urgent" in listed.text

    edit = await client.get(f"{LEVELS}/policies/{policy['id']}", headers=HTML)
    assert edit.status_code == 200 and 'value="Urgent printers"' in edit.text
    assert edit.text.count(f'name="csrf_token" value="{csrf}"') == edit.text.count("<form ")
    assert 'value="urgent" checked' in edit.text
    changed = good | {"policy_name": "Printers", "priority": [], "resolution_minutes": "-5"}
    again = await client.post(f"{LEVELS}/policies/{policy['id']}", data=changed, headers=HTML)
    assert again.status_code == 400 and 'id="f-resolution_minutes-error"' in again.text
    changed["resolution_minutes"] = "240"
    saved = await client.post(f"{LEVELS}/policies/{policy['id']}", data=changed, headers=HTML)
    assert saved.status_code == 303
    (policy,) = (await client.get("/api/sla-policies")).json()["data"]
    assert policy["name"] == "Printers" and policy["resolutionMinutes"] == 240
    assert policy["conditions"] == {"formId": [form["id"]]}

    # A calendar in use cannot go; the policy can, then the calendar.
    in_use = await client.post(
        f"{LEVELS}/calendars/{cal['id']}/delete", data={"csrf_token": csrf}, headers=HTML
    )
    assert (
        in_use.status_code == 303 and len((await client.get("/api/calendars")).json()["data"]) == 1
    )
    gone = await client.post(
        f"{LEVELS}/policies/{policy['id']}/delete", data={"csrf_token": csrf}, headers=HTML
    )
    assert gone.status_code == 303 and (await client.get("/api/sla-policies")).json()["data"] == []

    client.cookies.set("tk.session_token", agent.token)
    assert (await client.get(f"{LEVELS}/policies/{policy['id']}", headers=HTML)).status_code == 404


async def test_admin_edits_a_calendar(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    admin = await make_person(database, cipher, role="admin")
    client.cookies.set("tk.session_token", admin.token)
    csrf = csrf_of(await client.get(LEVELS, headers=HTML))
    made = {"calendar_name": "Office", "timezone": "UTC", "hours_mon": "09:00-17:00"}
    await client.post(LEVELS + "/calendars", data=made | {"csrf_token": csrf}, headers=HTML)
    (cal,) = (await client.get("/api/calendars")).json()["data"]
    listed = await client.get(LEVELS, headers=HTML)
    assert f'href="{LEVELS}/calendars/{cal["id"]}"' in listed.text

    edit = await client.get(f"{LEVELS}/calendars/{cal['id']}", headers=HTML)
    assert edit.status_code == 200 and 'value="09:00-17:00"' in edit.text
    assert edit.text.count(f'name="csrf_token" value="{csrf}"') == edit.text.count("<form ")
    bad = made | {"timezone": "Nowhere/Else", "hours_fri": "12:00-10:00", "csrf_token": csrf}
    refused = await client.post(f"{LEVELS}/calendars/{cal['id']}", data=bad, headers=HTML)
    assert refused.status_code == 400
    assert "not an IANA time zone" in refused.text and "hours.fri[0]" in refused.text
    assert 'value="Nowhere/Else"' in refused.text  # what was typed stays
    good = bad | {
        "calendar_name": "Auckland office",
        "timezone": "Pacific/Auckland",
        "hours_fri": "09:00-12:00, 13:00-16:00",
        "holiday_country": "nz",
    }
    saved = await client.post(f"{LEVELS}/calendars/{cal['id']}", data=good, headers=HTML)
    assert saved.status_code == 303
    (cal,) = (await client.get("/api/calendars")).json()["data"]
    assert (cal["name"], cal["timezone"], cal["holidayCountry"]) == (
        "Auckland office", "Pacific/Auckland", "NZ"
    )  # fmt: skip
    assert cal["hours"]["fri"] == [["09:00", "12:00"], ["13:00", "16:00"]]
    missing = await client.get(f"{LEVELS}/calendars/nope", headers=HTML)
    assert missing.status_code == 404


async def test_admin_edits_a_team_and_sees_field_errors(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    admin = await make_person(database, cipher, role="admin")
    aiko = await make_person(database, cipher, role="agent", name="Aiko")
    ben = await make_person(database, cipher, role="agent", name="Ben")
    customer = await make_person(database, cipher)
    client.cookies.set("tk.session_token", admin.token)
    csrf = csrf_of(await client.get(LEVELS, headers=HTML))
    for name in ("Hardware", "Software"):
        made = {"team_name": name, "member_ids": [aiko.user.id], "assignment": "manual"}
        await client.post(LEVELS + "/teams", data=made | {"csrf_token": csrf}, headers=HTML)
    again = {"team_name": "Software", "member_ids": [], "assignment": "manual"}
    taken = await client.post(LEVELS + "/teams", data=again | {"csrf_token": csrf}, headers=HTML)
    assert taken.status_code == 409 and "A team with this name exists." in taken.text
    hardware = next(
        t for t in (await client.get("/api/teams")).json()["data"] if t["name"] == "Hardware"
    )
    url = f"{LEVELS}/teams/{hardware['id']}"
    assert f'href="{url}"' in (await client.get(LEVELS, headers=HTML)).text

    edit = await client.get(url, headers=HTML)
    assert edit.status_code == 200 and 'value="Hardware"' in edit.text
    assert f'value="{aiko.user.id}" checked' in edit.text
    taken = {"team_name": "Software", "member_ids": [ben.user.id], "assignment": "round_robin"}
    refused = await client.post(url, data=taken | {"csrf_token": csrf}, headers=HTML)
    assert refused.status_code == 409 and "A team with this name exists." in refused.text
    assert f'value="{ben.user.id}" checked' in refused.text  # as typed
    not_staff = taken | {"team_name": "Printers", "member_ids": [customer.user.id]}
    refused = await client.post(url, data=not_staff | {"csrf_token": csrf}, headers=HTML)
    assert refused.status_code == 400
    assert 'id="member-ids-error">not an agent or admin<' in refused.text

    good = taken | {"team_name": "Printers", "member_ids": [aiko.user.id, ben.user.id]}
    assert (
        await client.post(url, data=good | {"csrf_token": csrf}, headers=HTML)
    ).status_code == 303
    team = next(
        t for t in (await client.get("/api/teams")).json()["data"] if t["id"] == hardware["id"]
    )
    assert (team["name"], team["assignment"]) == ("Printers", "round_robin")
    assert sorted(team["memberIds"]) == sorted([aiko.user.id, ben.user.id])
    assert (await client.get(f"{LEVELS}/teams/nope", headers=HTML)).status_code == 404
