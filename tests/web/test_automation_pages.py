"""/admin/automations over real HTTP: the no-JavaScript editor creates the contract's main
automation ("ticket.created, formId in [X] -> set team, assign round robin"), refuses with the
field named next to its input, edits, disables, enables and deletes; admins only."""

from __future__ import annotations

import httpx

from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tekudasai.teams import service as teams
from tests.factories import make_form, make_person
from tests.web.test_auth_reset_pages import HTML, csrf_of

PAGE = "/admin/automations"
ELEMENTS = [{"id": "e1", "type": "textarea", "name": "what", "label": "What?"}]


def editor(csrf: str, **fields: str) -> dict[str, str]:
    """An empty editor as the page posts it (3 condition rows, 2 action rows), plus `fields`."""
    data = {"csrf_token": csrf, "cond_rows": "3", "act_rows": "2", "position": "0"}
    data |= {"name": "", "event": "ticket.created", "idle_hours": "", "enabled": "on"}
    for n in range(3):
        data |= {f"cond_field_{n}": "", f"cond_op_{n}": "eq", f"cond_value_{n}": ""}
    for n in range(2):
        data |= {f"act_type_{n}": "", f"act_team_{n}": "", f"act_strategy_{n}": ""}
    return data | fields


async def test_admin_builds_a_round_robin_automation_by_clicking(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    admin = await make_person(database, cipher, role="admin")
    aiko = await make_person(database, cipher, role="agent", name="Aiko")
    ben = await make_person(database, cipher, role="agent", name="Ben")
    form = await make_form(database, admin, elements=ELEMENTS, name="Printers")
    async with database.sessionmaker() as db, db.begin():
        team = await teams.create_team(
            db, name="Hardware", member_ids=[aiko.user.id, ben.user.id], assignment="round_robin"
        )
    client.cookies.set("tk.session_token", admin.token)
    page = await client.get(PAGE, headers=HTML)
    assert page.status_code == 200 and "No automations yet" in page.text
    assert f'<option value="{team["id"]}">Hardware</option>' in page.text
    assert '<option value="answer.what">' in page.text  # answers of forms are fields too
    csrf = csrf_of(page)
    # Every form of the page carries the token (the editor's included).
    assert page.text.count(f'name="csrf_token" value="{csrf}"') == page.text.count("<form ")

    # Row 0 of the actions left blank, row 1 a team-less "set team": the error lands on row 1's
    # input as shown again (blank rows dropped: it is the first row then).
    bad = editor(csrf, cond_field_0="formId", cond_op_0="in", cond_value_0=form["id"])
    bad |= {"act_type_1": "set_team", "cond_field_1": "answer.what", "cond_op_1": "filled"}
    bad["cond_value_1"] = "maybe"
    refused = await client.post(PAGE, data=bad, headers=HTML)
    assert refused.status_code == 400, refused.text[:300]
    assert 'id="f-name-error">is empty<' in refused.text
    assert 'id="e-act_team_0">no such team<' in refused.text
    assert 'id="e-cond_value_1">true or false<' in refused.text
    assert f'value="{form["id"]}"' in refused.text  # what was typed stays
    assert (await client.get("/api/automations")).json()["data"] == []

    good = editor(csrf, name="Printers to Hardware", cond_field_0="formId", cond_op_0="in")
    good |= {"cond_value_0": form["id"], "act_type_0": "set_team", "act_team_0": team["id"]}
    good |= {"act_type_1": "assign", "act_strategy_1": "round_robin"}
    made = await client.post(PAGE, data=good, headers=HTML)
    assert made.status_code == 303, made.text[:300]
    (rule,) = (await client.get("/api/automations")).json()["data"]
    assert (rule["name"], rule["event"], rule["enabled"]) == (
        "Printers to Hardware", "ticket.created", True
    )  # fmt: skip
    assert rule["conditions"] == [{"field": "formId", "op": "in", "value": [form["id"]]}]
    assert rule["actions"] == [
        {"type": "set_team", "teamId": team["id"]},
        {"type": "assign", "strategy": "round_robin"},
    ]
    listed = await client.get(PAGE, headers=HTML)
    assert "Form is one of Printers" in listed.text and "Set team: Hardware" in listed.text
    assert "Assign: round robin in the ticket&#39;s team" in listed.text

    edit_url = f"{PAGE}/{rule['id']}"
    edit = await client.get(edit_url, headers=HTML)
    assert edit.status_code == 200 and 'value="Printers to Hardware"' in edit.text
    assert f'<option value="{team["id"]}" selected>Hardware</option>' in edit.text
    changed = editor(csrf, name="Urgent printers", cond_field_0="formId", cond_op_0="in")
    changed |= {"cond_value_0": form["id"], "cond_field_1": "priority", "cond_op_1": "eq"}
    changed |= {"cond_value_1": "urgent", "act_type_0": "assign", "act_strategy_0": ""}
    changed |= {"act_user_0": ben.user.id, "cond_rows": "3"}
    assert (await client.post(edit_url, data=changed, headers=HTML)).status_code == 303
    rule = (await client.get(f"/api/automations/{rule['id']}")).json()["data"]
    assert rule["name"] == "Urgent printers"
    assert rule["conditions"][1] == {"field": "priority", "op": "eq", "value": "urgent"}
    assert rule["actions"] == [{"type": "assign", "userId": ben.user.id}]
    no_action = changed | {"act_type_0": ""}
    refused = await client.post(edit_url, data=no_action, headers=HTML)
    assert refused.status_code == 400 and 'id="e-actions">at least one action<' in refused.text

    off = await client.post(f"{edit_url}/enabled", data={"csrf_token": csrf}, headers=HTML)
    assert off.status_code == 303
    assert (await client.get(f"/api/automations/{rule['id']}")).json()["data"]["enabled"] is False
    assert "Disabled" in (await client.get(PAGE, headers=HTML)).text
    on = await client.post(
        f"{edit_url}/enabled", data={"csrf_token": csrf, "enabled": "on"}, headers=HTML
    )
    assert on.status_code == 303
    assert (await client.get(f"/api/automations/{rule['id']}")).json()["data"]["enabled"] is True

    gone = await client.post(f"{edit_url}/delete", data={"csrf_token": csrf}, headers=HTML)
    assert gone.status_code == 303 and (await client.get("/api/automations")).json()["data"] == []
    assert (await client.get(edit_url, headers=HTML)).status_code == 404

    client.cookies.set("tk.session_token", aiko.token)
    assert (await client.get(PAGE, headers=HTML)).status_code == 404
