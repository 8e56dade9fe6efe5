"""Business-hours calendars over HTTP: admins only, every bad input a 400 with a field error."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import Person, person_fixture

admin = person_fixture("admin")
agent = person_fixture("agent")

OFFICE = {
    "name": "Wellington office",
    "timezone": "Pacific/Auckland",
    "hours": {"mon": [["09:00", "12:00"], ["13:00", "17:00"]], "fri": [["09:00", "24:00"]]},
    "holidays": ["2026-12-26", "2026-12-25", "2026-12-25"],
    "holidayCountry": "nz",
}


async def test_admin_creates_reads_updates_and_deletes_a_calendar(
    client: httpx.AsyncClient, admin: Person
) -> None:
    created = await client.post("/api/calendars", json=OFFICE, headers=admin.auth)
    assert created.status_code == 200, created.text
    calendar = created.json()["data"]
    assert calendar["hours"]["mon"] == [["09:00", "12:00"], ["13:00", "17:00"]]
    assert calendar["hours"]["sun"] == []
    assert calendar["holidays"] == ["2026-12-25", "2026-12-26"]
    assert calendar["holidayCountry"] == "NZ"
    path = f"/api/calendars/{calendar['id']}"

    patch = {"id": calendar["id"], "timezone": "Europe/Berlin", "holidayCountry": None}
    updated = (await client.patch(path, json=patch, headers=admin.auth)).json()["data"]
    assert updated["timezone"] == "Europe/Berlin" and updated["holidayCountry"] is None
    assert updated["name"] == OFFICE["name"]
    listed = (await client.get("/api/calendars", headers=admin.auth)).json()["data"]
    assert [c["id"] for c in listed] == [calendar["id"]]

    deleted = await client.delete(path, headers=admin.auth)
    assert deleted.json() == {"status": "success", "data": {"id": calendar["id"]}}
    assert (await client.get(path, headers=admin.auth)).status_code == 404


async def test_agents_do_not_see_calendars(client: httpx.AsyncClient, agent: Person) -> None:
    assert (await client.get("/api/calendars", headers=agent.auth)).status_code == 404
    refused = await client.post("/api/calendars", json=OFFICE, headers=agent.auth)
    assert refused.status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hours": {"mon": [["17:00", "09:00"]]}}, "hours.mon[0]"),
        ({"hours": {"mon": [["09:00", "09:00"]]}}, "hours.mon[0]"),
        ({"hours": {"mon": [["09:00", "13:00"], ["12:00", "17:00"]]}}, "hours.mon[1]"),
        ({"hours": {"tue": [["9:00", "17:00"]]}}, "hours.tue[0]"),
        ({"hours": {"tue": [["09:00", "24:30"]]}}, "hours.tue[0]"),
        ({"hours": {"tue": [["09:00"]]}}, "hours.tue[0]"),
        ({"hours": {"funday": [["09:00", "17:00"]]}}, "hours.funday"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"holidays": ["2026-02-30"]}, "holidays[0]"),
        ({"holidayCountry": "XX"}, "holidayCountry"),
        ({"name": "   "}, "name"),
    ],
)
async def test_bad_calendars_are_refused_with_the_field_named(
    client: httpx.AsyncClient, admin: Person, change: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/calendars", json=OFFICE | change, headers=admin.auth)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert field in [error["field"] for error in body["errors"]]
    assert (await client.get("/api/calendars", headers=admin.auth)).json()["data"] == []


async def test_a_bad_patch_changes_nothing(client: httpx.AsyncClient, admin: Person) -> None:
    calendar = (await client.post("/api/calendars", json=OFFICE, headers=admin.auth)).json()["data"]
    path = f"/api/calendars/{calendar['id']}"
    bad = {"name": "Renamed", "timezone": "Nowhere/Land"}
    assert (await client.patch(path, json=bad, headers=admin.auth)).status_code == 400
    assert (await client.get(path, headers=admin.auth)).json()["data"]["name"] == OFFICE["name"]
    other = await client.patch(path, json={"id": "another"}, headers=admin.auth)
    assert other.status_code == 400
    assert (
        await client.patch("/api/calendars/nope", json={}, headers=admin.auth)
    ).status_code == 404
