"""Teams over HTTP: admins only; members must be agents or admins."""

from __future__ import annotations

import httpx

from tests.factories import Person, person_fixture

admin = person_fixture("admin")
agent = person_fixture("agent")
other_agent = person_fixture("agent")
customer = person_fixture("user")


async def test_admin_manages_a_team(
    client: httpx.AsyncClient, admin: Person, agent: Person, other_agent: Person
) -> None:
    body = {
        "name": "Hardware",
        "memberIds": [agent.user.id, agent.user.id],
        "assignment": "round_robin",
    }
    created = await client.post("/api/teams", json=body, headers=admin.auth)
    assert created.status_code == 200, created.text
    team = created.json()["data"]
    assert team["memberIds"] == [agent.user.id] and team["assignment"] == "round_robin"
    path = f"/api/teams/{team['id']}"

    change = {"memberIds": [other_agent.user.id, admin.user.id], "assignment": "least_open"}
    updated = (await client.patch(path, json=change, headers=admin.auth)).json()["data"]
    assert sorted(updated["memberIds"]) == sorted([other_agent.user.id, admin.user.id])
    assert updated["assignment"] == "least_open" and updated["name"] == "Hardware"
    assert (await client.get("/api/teams", headers=admin.auth)).json()["data"] == [updated]

    assert (await client.delete(path, headers=admin.auth)).json()["data"] == {"id": team["id"]}
    assert (await client.get(path, headers=admin.auth)).status_code == 404


async def test_members_must_be_staff_and_names_unique(
    client: httpx.AsyncClient, admin: Person, agent: Person, customer: Person
) -> None:
    bad = {"name": "Mixed", "memberIds": [agent.user.id, customer.user.id, "ghost"]}
    refused = await client.post("/api/teams", json=bad, headers=admin.auth)
    assert refused.status_code == 400
    assert [e["field"] for e in refused.json()["errors"]] == ["memberIds[1]", "memberIds[2]"]
    for wrong in (
        {"name": ""},
        {"name": "X", "assignment": "random"},
        {"name": "X", "memberIds": "a"},
    ):
        assert (await client.post("/api/teams", json=wrong, headers=admin.auth)).status_code == 400
    assert (await client.post("/api/teams", json={"name": "Dup"}, headers=admin.auth)).is_success
    taken = await client.post("/api/teams", json={"name": "Dup"}, headers=admin.auth)
    assert taken.status_code == 409 and taken.json()["code"] == "CONFLICT"
    assert [
        t["name"] for t in (await client.get("/api/teams", headers=admin.auth)).json()["data"]
    ] == ["Dup"]


async def test_only_admins_manage_teams(
    client: httpx.AsyncClient, agent: Person, customer: Person
) -> None:
    for person in (agent, customer):
        assert (await client.get("/api/teams", headers=person.auth)).status_code == 404
        refused = await client.post("/api/teams", json={"name": "T"}, headers=person.auth)
        assert refused.status_code == 404
