"""Renaming a team to a taken name while changing its members is the 409, not a 500 (the
member check's query used to flush the name outside the savepoint that catches it)."""

from __future__ import annotations

import httpx

from tests.factories import Person, person_fixture

admin = person_fixture("admin")
agent = person_fixture("agent")


async def test_taken_name_with_members_is_a_conflict(
    client: httpx.AsyncClient, admin: Person, agent: Person
) -> None:
    ids = []
    for name in ("Hardware", "Software"):
        made = await client.post(
            "/api/teams",
            json={"name": name, "memberIds": [], "assignment": "manual"},
            headers=admin.auth,
        )
        ids.append(made.json()["data"]["id"])
    clash = {"name": "Software", "memberIds": [agent.user.id]}
    refused = await client.patch(f"/api/teams/{ids[0]}", json=clash, headers=admin.auth)
    assert refused.status_code == 409, refused.text
    unchanged = (await client.get("/api/teams", headers=admin.auth)).json()["data"]
    assert [(t["name"], t["memberIds"]) for t in unchanged] == [("Hardware", []), ("Software", [])]
    renamed = await client.patch(
        f"/api/teams/{ids[0]}",
        json={"name": "Printers", "memberIds": [agent.user.id]},
        headers=admin.auth,
    )
    assert renamed.status_code == 200 and renamed.json()["data"]["memberIds"] == [agent.user.id]
