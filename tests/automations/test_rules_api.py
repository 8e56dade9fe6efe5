"""Automations over HTTP: every reference and value checked before a rule is stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tekudasai.db.session import Database
from tests.factories import Person, make_form, person_fixture

admin = person_fixture("admin")
agent = person_fixture("agent")
customer = person_fixture("user")
ELEMENTS = [{"id": "e1", "type": "textarea", "name": "description", "label": "D", "required": True}]


@pytest.fixture
async def world(
    client: httpx.AsyncClient, database: Database, admin: Person, agent: Person
) -> dict[str, str]:
    await make_form(database, admin, elements=ELEMENTS)
    team = await client.post(
        "/api/teams", json={"name": "Hardware", "memberIds": [agent.user.id]}, headers=admin.auth
    )
    canned = await client.post(
        "/api/canned-responses",
        json={"title": "Ack", "body": "Hi {{reporter.name}}", "shared": True},
        headers=admin.auth,
    )
    private = await client.post(
        "/api/canned-responses", json={"title": "Mine", "body": "x"}, headers=agent.auth
    )
    return {
        "team": team.json()["data"]["id"],
        "canned": canned.json()["data"]["id"],
        "private": private.json()["data"]["id"],
    }


def rule(**extra: Any) -> dict[str, Any]:
    return {
        "name": "Printers to hardware",
        "event": "ticket.created",
        "conditions": [{"field": "summary", "op": "contains", "value": "print(er"}],
        "actions": [{"type": "set_priority", "priority": "high"}],
        **extra,
    }


async def test_admin_creates_a_rule_with_every_action(
    client: httpx.AsyncClient, admin: Person, agent: Person, world: dict[str, str]
) -> None:
    actions = [
        {"type": "set_priority", "priority": "urgent"},
        {"type": "set_status", "status": "in_progress"},
        {"type": "set_team", "teamId": world["team"]},
        {"type": "assign", "strategy": "round_robin"},
        {"type": "assign", "userId": agent.user.id},
        {"type": "add_tags", "tags": ["Printer ", "printer", "floor-2"]},
        {"type": "remove_tags", "tags": ["new"]},
        {"type": "add_internal_note", "body": " Check the toner "},
        {"type": "reply", "cannedResponseId": world["canned"]},
        {"type": "notify", "userIds": [agent.user.id]},
    ]
    conditions = [
        {"field": "answer.description", "op": "filled", "value": True},
        {"field": "tags", "op": "notIn", "value": ["vip"]},
        {"field": "channel", "op": "eq", "value": "email"},
        {"field": "reporter.email", "op": "contains", "value": "@example.com"},
    ]
    created = await client.post(
        "/api/automations", json=rule(actions=actions, conditions=conditions), headers=admin.auth
    )
    assert created.status_code == 200, created.text
    data = created.json()["data"]
    assert data["actions"][5] == {"type": "add_tags", "tags": ["printer", "floor-2"]}
    assert data["actions"][7]["body"] == "Check the toner"
    assert data["enabled"] is True and data["idleHours"] is None

    path = f"/api/automations/{data['id']}"
    idle = {"event": "ticket.idle", "idleHours": 48, "enabled": False}
    changed = (await client.patch(path, json=idle, headers=admin.auth)).json()["data"]
    assert changed["event"] == "ticket.idle" and changed["idleHours"] == 48
    back = (await client.patch(path, json={"event": "ticket.updated"}, headers=admin.auth)).json()
    assert back["data"]["idleHours"] is None and back["data"]["actions"] == data["actions"]
    assert (await client.delete(path, headers=admin.auth)).is_success
    assert (await client.get("/api/automations", headers=admin.auth)).json()["data"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "name"),
        ({"actions": []}, "actions"),
        ({"actions": [{"type": "explode"}]}, "actions[0].type"),
        ({"actions": [{"type": "set_priority", "priority": "asap"}]}, "actions[0].priority"),
        ({"actions": [{"type": "set_status", "status": "done"}]}, "actions[0].status"),
        ({"actions": [{"type": "set_team", "teamId": "deleted"}]}, "actions[0].teamId"),
        ({"actions": [{"type": "assign"}]}, "actions[0]"),
        ({"actions": [{"type": "assign", "strategy": "random"}]}, "actions[0].strategy"),
        ({"actions": [{"type": "assign", "userId": "ghost"}]}, "actions[0].userId"),
        ({"actions": [{"type": "add_tags", "tags": []}]}, "actions[0].tags"),
        ({"actions": [{"type": "add_tags", "tags": ["x" * 51]}]}, "actions[0].tags"),
        ({"actions": [{"type": "add_internal_note", "body": " "}]}, "actions[0].body"),
        (
            {"actions": [{"type": "reply", "cannedResponseId": "nope"}]},
            "actions[0].cannedResponseId",
        ),
        ({"actions": [{"type": "notify", "userIds": ["ghost"]}]}, "actions[0].userIds[0]"),
        ({"actions": [{"type": "webhook", "webhookId": "nope"}]}, "actions[0].webhookId"),
        (
            {"conditions": [{"field": "answer.nothing", "op": "eq", "value": "x"}]},
            "conditions[0].field",
        ),
        ({"conditions": [{"field": "colour", "op": "eq", "value": "x"}]}, "conditions[0].field"),
        ({"conditions": [{"field": "status", "op": "like", "value": "x"}]}, "conditions[0].op"),
        ({"conditions": [{"field": "status", "op": "in", "value": "open"}]}, "conditions[0].value"),
        (
            {"conditions": [{"field": "status", "op": "filled", "value": "yes"}]},
            "conditions[0].value",
        ),
        ({"event": "ticket.idle"}, "idleHours"),
        ({"event": "ticket.idle", "idleHours": 0}, "idleHours"),
        ({"idleHours": 5}, "idleHours"),
    ],
)
async def test_bad_rules_are_refused_with_the_field_named(
    client: httpx.AsyncClient,
    admin: Person,
    world: dict[str, str],
    change: dict[str, Any],
    field: str,
) -> None:
    response = await client.post("/api/automations", json=rule(**change), headers=admin.auth)
    assert response.status_code == 400, response.text
    assert field in [error["field"] for error in response.json()["errors"]]
    assert (await client.get("/api/automations", headers=admin.auth)).json()["data"] == []


async def test_a_private_canned_response_cannot_be_an_automatic_reply(
    client: httpx.AsyncClient, admin: Person, world: dict[str, str]
) -> None:
    reply = [{"type": "reply", "cannedResponseId": world["private"]}]
    refused = await client.post("/api/automations", json=rule(actions=reply), headers=admin.auth)
    assert refused.status_code == 400


async def test_only_admins_see_automations(
    client: httpx.AsyncClient, agent: Person, customer: Person
) -> None:
    for person in (agent, customer):
        assert (await client.get("/api/automations", headers=person.auth)).status_code == 404
        assert (
            await client.post("/api/automations", json=rule(), headers=person.auth)
        ).status_code == 404
