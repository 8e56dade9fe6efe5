"""Canned responses: agents own theirs, admins manage shared ones, placeholders are filled."""

from __future__ import annotations

import httpx

from tekudasai.canned.service import fill
from tests.factories import Person, person_fixture

admin = person_fixture("admin")
agent = person_fixture("agent")
other_agent = person_fixture("agent")
customer = person_fixture("user")


async def test_agents_see_their_own_and_the_shared_ones(
    client: httpx.AsyncClient, admin: Person, agent: Person, other_agent: Person
) -> None:
    mine = {"title": "Printer reset", "body": "Hello {{reporter.name}}, please reset it."}
    created = await client.post("/api/canned-responses", json=mine, headers=agent.auth)
    assert created.status_code == 200, created.text
    shared = {"title": "Welcome", "body": "Thanks for ticket {{ticket.id}}.", "shared": True}
    assert (await client.post("/api/canned-responses", json=shared, headers=admin.auth)).is_success
    theirs = {"title": "Other's", "body": "Private"}
    assert (
        await client.post("/api/canned-responses", json=theirs, headers=other_agent.auth)
    ).is_success

    listed = (await client.get("/api/canned-responses", headers=agent.auth)).json()["data"]
    assert [c["title"] for c in listed] == ["Printer reset", "Welcome"]
    own_id = created.json()["data"]["id"]
    other_ids = [c["id"] for c in listed if c["title"] == "Welcome"]
    hidden = await client.get(f"/api/canned-responses/{own_id}", headers=other_agent.auth)
    assert hidden.status_code == 404

    # The shared one is the admins': an agent may use it but not change it.
    refused = await client.patch(
        f"/api/canned-responses/{other_ids[0]}", json={"title": "Mine now"}, headers=agent.auth
    )
    assert refused.status_code == 403
    edited = await client.patch(
        f"/api/canned-responses/{own_id}", json={"body": "New text"}, headers=agent.auth
    )
    assert edited.json()["data"]["body"] == "New text"
    assert (await client.delete(f"/api/canned-responses/{own_id}", headers=agent.auth)).is_success


async def test_only_admins_share_and_customers_see_nothing(
    client: httpx.AsyncClient, agent: Person, customer: Person
) -> None:
    shared = {"title": "Team text", "body": "x", "shared": True}
    denied = await client.post("/api/canned-responses", json=shared, headers=agent.auth)
    assert denied.status_code == 403 and denied.json()["code"] == "FORBIDDEN"
    blank = await client.post(
        "/api/canned-responses", json={"title": "t", "body": "   "}, headers=agent.auth
    )
    assert blank.status_code == 400 and blank.json()["errors"][0]["field"] == "body"
    too_long = {"title": "t", "body": "x" * 20_001}
    assert (
        await client.post("/api/canned-responses", json=too_long, headers=agent.auth)
    ).status_code == 400
    assert (await client.get("/api/canned-responses", headers=customer.auth)).status_code == 404


def test_placeholders_are_filled_and_nothing_else_is_evaluated() -> None:
    body = "Hi {{ reporter.name }}, #{{ticket.id}} ({{ticket.summary}}) — {{agent.name}} {{x.y}}"
    values = {"reporter.name": "Aiko", "ticket.id": "42", "ticket.summary": "{{agent.name}}"}
    assert (
        fill(body, values | {"agent.name": "Ben"}) == "Hi Aiko, #42 ({{agent.name}}) — Ben {{x.y}}"
    )
    assert fill("{{ticket.id.__class__}}", {"ticket.id": "1"}) == "{{ticket.id.__class__}}"
