"""What the original web client sends and reads keeps working (contract: "Request bodies",
"Stored answers"): extra keys such as `id` are ignored, a conflicting `id` is refused, and every
input element of the form has a key in the stored answers."""

from __future__ import annotations

from typing import Any

import httpx

from tekudasai.forms.models import Form
from tests.factories import Person

# An optional text, a text panel, and an element shown only when the category is "software".
SHOW_IF_ELEMENTS: list[dict[str, Any]] = [
    {"type": "text-panel", "id": "p1", "name": "intro", "content": "Tell us"},
    {
        "type": "dropdown",
        "id": "e1",
        "name": "category",
        "label": "Category",
        "required": True,
        "options": [
            {"id": "o1", "label": "Hardware", "value": "hardware"},
            {"id": "o2", "label": "Software", "value": "software"},
        ],
    },
    {"type": "text-field", "id": "e2", "name": "asset", "label": "Asset tag", "required": False},
    {
        "type": "text-field",
        "id": "e3",
        "name": "program",
        "label": "Program",
        "required": True,
        "showIf": {"field": "category", "op": "eq", "value": "software"},
    },
    {
        "type": "multi-select",
        "id": "e4",
        "name": "tags",
        "label": "Tags",
        "options": [
            {"id": "t1", "label": "Urgent", "value": "urgent"},
        ],
    },
]


async def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error" and body["code"] == code, body
    return body


async def test_agent_patch_with_the_same_id_in_the_body_works(
    client: httpx.AsyncClient, agent: Person, ticket: dict[str, Any]
) -> None:
    tid = ticket["id"]
    response = await client.patch(
        f"/api/tickets/{tid}", json={"id": tid, "status": "pending"}, headers=agent.auth
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "pending"
    # Any other key the client happens to send is ignored too (and a string id is the same id).
    response = await client.patch(
        f"/api/tickets/{tid}",
        json={"id": str(tid), "status": "in_progress", "updatedAt": "x", "reporter": {"a": 1}},
        headers=agent.auth,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "in_progress"


async def test_a_different_id_in_the_body_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, agent: Person, reporter: Person, ticket: dict[str, Any]
) -> None:
    tid = ticket["id"]
    for other in (tid + 1, "abc", True, [tid], 0):
        response = await client.patch(
            f"/api/tickets/{tid}", json={"id": other, "status": "pending"}, headers=agent.auth
        )
        body = await _error(response, 400, "VALIDATION_ERROR")
        assert body["errors"][0]["field"] == "id"
    response = await client.patch(
        f"/api/tickets/my/{tid}", json={"id": tid + 1, "formResponse": {}}, headers=reporter.auth
    )
    await _error(response, 400, "VALIDATION_ERROR")
    current = await client.get(f"/api/tickets/{tid}", headers=agent.auth)
    assert current.json()["data"]["status"] == "open"


async def test_reporter_patch_with_id_in_the_body_works(
    client: httpx.AsyncClient, agent: Person, reporter: Person, ticket: dict[str, Any]
) -> None:
    tid = ticket["id"]
    opened = await client.post(f"/api/tickets/{tid}/open-form", headers=agent.auth)
    assert opened.status_code == 200, opened.text
    response = await client.patch(
        f"/api/tickets/my/{tid}",
        json={
            "id": tid,
            "formResponse": {"category": "software", "description": "Now it crashes"},
            "formOpen": True,
        },
        headers=reporter.auth,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["formResponse"]["description"] == "Now it crashes"


async def test_form_edit_and_enable_disable_with_id_in_the_body(
    client: httpx.AsyncClient, admin: Person, form: Form
) -> None:
    full = (await client.get(f"/api/forms/{form.id}", headers=admin.auth)).json()["data"]
    # The original client sends the whole form object back, `id` and timestamps included.
    edited = {**full, "name": "Renamed", "disabled": True}
    response = await client.patch(f"/api/forms/{form.id}", json=edited, headers=admin.auth)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["name"] == "Renamed"
    assert response.json()["data"]["disabled"] is True
    response = await client.patch(
        f"/api/forms/{form.id}", json={"id": form.id, "disabled": False}, headers=admin.auth
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["disabled"] is False
    response = await client.patch(
        f"/api/forms/{form.id}", json={"id": "another-form", "disabled": True}, headers=admin.auth
    )
    await _error(response, 400, "VALIDATION_ERROR")
    after = (await client.get(f"/api/forms/{form.id}", headers=admin.auth)).json()["data"]
    assert after["disabled"] is False


async def test_unknown_keys_are_ignored_in_create_and_auth_bodies(
    client: httpx.AsyncClient, reporter: Person, form: Form
) -> None:
    response = await client.post(
        "/api/tickets/my",
        json={
            "formId": form.id,
            "summary": "Extra keys",
            "formResponse": {"category": "hardware", "description": "d"},
            "id": 7,
            "status": "closed",
            "reporterId": "someone-else",
        },
        headers=reporter.auth,
    )
    assert response.status_code == 200, response.text
    created = response.json()["data"]
    assert created["status"] == "open" and created["reporterId"] == reporter.user.id
    response = await client.post(
        "/api/auth/sign-in/email",
        json={"email": reporter.email, "password": reporter.password, "extra": {"x": 1}},
    )
    assert response.status_code == 200, response.text


async def _show_if_form(client: httpx.AsyncClient, admin: Person) -> str:
    response = await client.post(
        "/api/forms",
        json={"name": "Show-if form", "description": "", "elements": SHOW_IF_ELEMENTS},
        headers=admin.auth,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["id"])


async def test_every_input_element_is_stored_unanswered_and_hidden_as_blank(
    client: httpx.AsyncClient, admin: Person, agent: Person, reporter: Person
) -> None:
    form_id = await _show_if_form(client, admin)
    response = await client.post(
        "/api/tickets/my",
        json={
            "formId": form_id,
            "summary": "Blanks",
            # `program` is hidden (category is not software): its answer is not kept.
            "formResponse": {"category": "hardware", "program": "Excel"},
        },
        headers=reporter.auth,
    )
    assert response.status_code == 200, response.text
    tid = response.json()["data"]["id"]
    expected = {"category": "hardware", "asset": "", "program": "", "tags": ""}
    assert response.json()["data"]["formResponse"] == expected
    read = await client.get(f"/api/tickets/my/{tid}", headers=reporter.auth)
    assert read.json()["data"]["formResponse"] == expected

    # The agent's edit stores the same shape.
    response = await client.patch(
        f"/api/tickets/{tid}",
        json={"formResponse": {"category": "software", "program": "Excel"}},
        headers=agent.auth,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["formResponse"] == {
        "category": "software",
        "asset": "",
        "program": "Excel",
        "tags": "",
    }

    # And so does the reporter's edit after the form is re-opened.
    await client.post(f"/api/tickets/{tid}/open-form", headers=agent.auth)
    response = await client.patch(
        f"/api/tickets/my/{tid}",
        json={"formResponse": {"category": "hardware", "asset": "A-1", "tags": ["urgent"]}},
        headers=reporter.auth,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["formResponse"] == {
        "category": "hardware",
        "asset": "A-1",
        "program": "",
        "tags": ["urgent"],
    }


async def test_sign_up_ignores_keys_it_does_not_know_and_never_grants_a_role(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/auth/sign-up/email",
        json={
            "name": "Grace Hopper",
            "email": "grace.extra@navy.test",
            "password": "correct-horse-battery",
            "isAdmin": True,
            "role": "admin",
            "emailVerified": True,
        },
    )
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert user["role"] == "user" and user["emailVerified"] is False


async def test_demo_tickets_are_stored_with_every_answer_key(database: Any, cipher: Any) -> None:
    from sqlalchemy import select

    from tekudasai.forms.models import FormVersion
    from tekudasai.seed import seed_demo
    from tekudasai.tickets.models import Ticket

    async with database.sessionmaker() as db, db.begin():
        await seed_demo(db, cipher)
    async with database.sessionmaker() as db:
        rows = (await db.execute(select(Ticket, FormVersion).join(FormVersion))).all()
    assert rows
    for ticket, version in rows:
        names = [e["name"] for e in version.elements if e["type"] != "text-panel"]
        assert sorted(ticket.form_response) == sorted(names), ticket.summary
