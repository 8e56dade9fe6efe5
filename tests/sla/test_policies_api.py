"""SLA policies over HTTP: references checked, targets positive, order by position."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tekudasai.db.session import Database
from tests.factories import Person, make_form, person_fixture

admin = person_fixture("admin")
agent = person_fixture("agent")
CALENDAR = {"name": "Office", "timezone": "Europe/Berlin", "hours": {"mon": [["09:00", "17:00"]]}}


@pytest.fixture
async def calendar_id(client: httpx.AsyncClient, admin: Person) -> str:
    response = await client.post("/api/calendars", json=CALENDAR, headers=admin.auth)
    return str(response.json()["data"]["id"])


def policy(calendar_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "Urgent hardware",
        "position": 1,
        "conditions": {"priority": ["urgent", "high"]},
        "calendarId": calendar_id,
        "firstResponseMinutes": 30,
        "resolutionMinutes": 480,
        **extra,
    }


async def test_policies_are_listed_by_position_and_editable(
    client: httpx.AsyncClient, admin: Person, calendar_id: str, database: Database
) -> None:
    elements = [{"id": "e1", "type": "textarea", "name": "d", "label": "D", "required": True}]
    form = await make_form(database, admin, elements=elements)
    team = (await client.post("/api/teams", json={"name": "HW"}, headers=admin.auth)).json()
    later = policy(calendar_id, name="Everything else", position=9, conditions={})
    assert (await client.post("/api/sla-policies", json=later, headers=admin.auth)).is_success
    first = policy(calendar_id, conditions={"formId": [form["id"]], "teamId": [team["data"]["id"]]})
    created = await client.post("/api/sla-policies", json=first, headers=admin.auth)
    assert created.status_code == 200, created.text
    listed = (await client.get("/api/sla-policies", headers=admin.auth)).json()["data"]
    assert [p["name"] for p in listed] == ["Urgent hardware", "Everything else"]

    path = f"/api/sla-policies/{created.json()['data']['id']}"
    change = {"position": 20, "resolutionMinutes": 960, "name": None}
    updated = (await client.patch(path, json=change, headers=admin.auth)).json()["data"]
    assert updated["position"] == 20 and updated["resolutionMinutes"] == 960
    assert updated["name"] == "Urgent hardware"
    listed = (await client.get("/api/sla-policies", headers=admin.auth)).json()["data"]
    assert [p["name"] for p in listed] == ["Everything else", "Urgent hardware"]

    in_use = await client.delete(f"/api/calendars/{calendar_id}", headers=admin.auth)
    assert in_use.status_code == 409 and in_use.json()["code"] == "CONFLICT"
    assert (await client.delete(path, headers=admin.auth)).is_success
    assert (await client.get(path, headers=admin.auth)).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"firstResponseMinutes": 0}, "firstResponseMinutes"),
        ({"resolutionMinutes": -5}, "resolutionMinutes"),
        ({"resolutionMinutes": 10**9}, "resolutionMinutes"),
        ({"calendarId": "gone"}, "calendarId"),
        ({"conditions": {"priority": ["whenever"]}}, "conditions.priority[0]"),
        ({"conditions": {"formId": ["no-such-form"]}}, "conditions.formId[0]"),
        ({"conditions": {"teamId": ["deleted-team"]}}, "conditions.teamId[0]"),
        ({"conditions": {"colour": ["red"]}}, "conditions.colour"),
        ({"name": " "}, "name"),
    ],
)
async def test_bad_policies_are_refused_with_the_field_named(
    client: httpx.AsyncClient, admin: Person, calendar_id: str, change: dict[str, Any], field: str
) -> None:
    response = await client.post(
        "/api/sla-policies", json=policy(calendar_id, **change), headers=admin.auth
    )
    assert response.status_code == 400, response.text
    assert field in [error["field"] for error in response.json()["errors"]]
    assert (await client.get("/api/sla-policies", headers=admin.auth)).json()["data"] == []


async def test_wrong_types_and_roles_are_refused(
    client: httpx.AsyncClient, admin: Person, agent: Person, calendar_id: str
) -> None:
    for wrong in ({"firstResponseMinutes": "30"}, {"position": 1.5}, {"conditions": []}):
        response = await client.post(
            "/api/sla-policies", json=policy(calendar_id, **wrong), headers=admin.auth
        )
        assert response.status_code == 400
    denied = await client.post("/api/sla-policies", json=policy(calendar_id), headers=agent.auth)
    assert denied.status_code == 404
