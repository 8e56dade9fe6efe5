"""The agents' side of tickets over HTTP: lists, detail, workflow, assignment, deletion."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tekudasai.db.session import Database
from tests.factories import Person
from tests.tickets.conftest import FileTicket, scalar


async def logs_of(database: Database, ticket_id: int) -> list[tuple[str, str]]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT action_type, action FROM ticket_logs WHERE ticket_id = :id ORDER BY id"),
            {"id": ticket_id},
        )
        return [(r[0], r[1]) for r in rows]


async def test_customers_do_not_see_agent_endpoints(
    client: httpx.AsyncClient, reporter: Person, ticket: dict[str, Any]
) -> None:
    tid = ticket["id"]
    calls = [
        ("GET", "/api/tickets", None),
        ("GET", f"/api/tickets/{tid}", None),
        ("PATCH", f"/api/tickets/{tid}", {"status": "closed"}),
        ("DELETE", f"/api/tickets/{tid}", None),
        ("POST", f"/api/tickets/{tid}/assign-toggle", None),
        ("POST", f"/api/tickets/{tid}/assign", {"assigneeId": None}),
        ("POST", f"/api/tickets/{tid}/open-form", None),
        ("GET", f"/api/tickets/{tid}/logs", None),
        ("GET", f"/api/tickets/{tid}/comments", None),
        ("POST", f"/api/tickets/{tid}/comments", {"body": "x"}),
    ]
    for method, path, body in calls:
        response = await client.request(method, path, json=body, headers=reporter.auth)
        assert response.status_code == 404, (method, path)
        assert response.json()["code"] == "NOT_FOUND"
    mine = (await client.get(f"/api/tickets/my/{tid}", headers=reporter.auth)).json()["data"]
    assert mine["status"] == "open" and mine["assigneeId"] is None


async def test_detail_has_decrypted_reporter_and_assignee(
    client: httpx.AsyncClient, reporter: Person, agent: Person, ticket: dict[str, Any]
) -> None:
    path = f"/api/tickets/{ticket['id']}"
    detail = (await client.get(path, headers=agent.auth)).json()["data"]
    assert detail["reporter"] == {
        "id": reporter.user.id,
        "userId": reporter.user.id,
        "name": reporter.name,
        "email": reporter.email,
    }
    assert detail["assignee"] is None
    assert detail["form"]["id"] == ticket["formId"]
    await client.post(f"{path}/assign-toggle", headers=agent.auth)
    detail = (await client.get(path, headers=agent.auth)).json()["data"]
    assert detail["assignee"]["email"] == agent.email
    assert (await client.get("/api/tickets/999999", headers=agent.auth)).status_code == 404


async def test_status_workflow_logs_and_refusals(
    client: httpx.AsyncClient,
    agent: Person,
    ticket: dict[str, Any],
    database: Database,
) -> None:
    tid = ticket["id"]
    path = f"/api/tickets/{tid}"
    for status in ("in_progress", "pending", "resolved", "closed"):
        response = await client.patch(path, json={"status": status}, headers=agent.auth)
        assert response.status_code == 200, response.text
        assert response.json()["data"]["status"] == status
    refused = await client.patch(path, json={"status": "resolved"}, headers=agent.auth)
    assert refused.status_code == 400
    assert refused.json()["code"] == "INVALID_TRANSITION"
    bad = await client.patch(path, json={"status": "done"}, headers=agent.auth)
    assert bad.status_code == 400 and bad.json()["code"] == "VALIDATION_ERROR"
    same = await client.patch(path, json={"status": "closed"}, headers=agent.auth)
    assert same.status_code == 200
    # A refused change stores nothing, even the valid parts of the same request.
    mixed = await client.patch(
        path, json={"status": "pending", "summary": "Renamed"}, headers=agent.auth
    )
    assert mixed.status_code == 400
    assert await scalar(database, "SELECT summary FROM tickets WHERE id = :id", id=tid) == (
        "Printer is on fire"
    )
    reopened = await client.patch(path, json={"status": "open"}, headers=agent.auth)
    assert reopened.json()["data"]["status"] == "open"
    assert await logs_of(database, tid) == [
        ("create", "Ticket created"),
        ("update", "Ticket status updated from open to in_progress"),
        ("update", "Ticket status updated from in_progress to pending"),
        ("update", "Ticket status updated from pending to resolved"),
        ("update", "Ticket status updated from resolved to closed"),
        ("update", "Ticket status updated from closed to open"),
    ]


async def test_patch_summary_and_response_are_described_field_by_field(
    client: httpx.AsyncClient,
    agent: Person,
    ticket: dict[str, Any],
) -> None:
    path = f"/api/tickets/{ticket['id']}"
    await client.post(f"{path}/open-form", headers=agent.auth)
    response = await client.patch(
        path,
        json={
            "summary": "Printer smokes",
            "formResponse": {"category": "software", "description": "The screen flickers"},
        },
        headers=agent.auth,
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["summary"] == "Printer smokes" and data["formOpen"] is False
    assert data["updatedAt"] >= ticket["updatedAt"]
    logs = (await client.get(f"{path}/logs", headers=agent.auth)).json()["data"]
    details = logs[-1]["details"]
    assert details["summary"] == {"from": "Printer is on fire", "to": "Printer smokes"}
    assert details["formResponse"] == {"category": {"from": "hardware", "to": "software"}}
    assert details["formOpen"] == {"from": True, "to": False}
    for body in (
        {"summary": ""},
        {"summary": "x" * 501},
        {"formResponse": {"category": "?"}},
        {"id": "not-this-ticket", "summary": "other"},
    ):
        refused = await client.patch(path, json=body, headers=agent.auth)
        assert refused.status_code == 400, body
    after = (await client.get(f"{path}/logs", headers=agent.auth)).json()["data"]
    assert len(after) == len(logs)


async def test_delete_keeps_the_audit_trail(
    client: httpx.AsyncClient,
    reporter: Person,
    agent: Person,
    ticket: dict[str, Any],
    database: Database,
) -> None:
    tid = ticket["id"]
    await client.post(f"/api/tickets/{tid}/comments", json={"body": "hi"}, headers=agent.auth)
    deleted = await client.delete(f"/api/tickets/{tid}", headers=agent.auth)
    assert deleted.status_code == 200
    assert deleted.json()["data"]["id"] == tid
    assert (await client.get(f"/api/tickets/{tid}", headers=agent.auth)).status_code == 404
    assert (await client.get(f"/api/tickets/my/{tid}", headers=reporter.auth)).status_code == 404
    again = await client.delete(f"/api/tickets/{tid}", headers=agent.auth)
    assert again.status_code == 404
    trail = (await client.get(f"/api/tickets/{tid}/logs", headers=agent.auth)).json()["data"]
    assert [log["actionType"] for log in trail] == ["create", "comment", "delete"]
    assert trail[-1]["userId"] == agent.user.id
    assert trail[-1]["details"]["ticket"]["summary"] == "Printer is on fire"
    assert await scalar(database, "SELECT count(*) FROM ticket_comments") == 0


async def test_assignment(
    client: httpx.AsyncClient,
    reporter: Person,
    agent: Person,
    admin: Person,
    other: Person,
    ticket: dict[str, Any],
    database: Database,
) -> None:
    path = f"/api/tickets/{ticket['id']}"
    toggled = await client.post(f"{path}/assign-toggle", headers=agent.auth)
    assert toggled.json()["data"]["assigneeId"] == agent.user.id
    # Anyone assigned: the toggle unassigns, whoever calls it.
    toggled = await client.post(f"{path}/assign-toggle", headers=admin.auth)
    assert toggled.json()["data"]["assigneeId"] is None

    to_admin = await client.post(
        f"{path}/assign", json={"assigneeId": admin.user.id}, headers=agent.auth
    )
    assert to_admin.status_code == 200 and to_admin.json()["data"]["assigneeId"] == admin.user.id
    for target in (other.user.id, reporter.user.id, "no-such-user"):
        refused = await client.post(
            f"{path}/assign", json={"assigneeId": target}, headers=agent.auth
        )
        assert refused.status_code == 400, target
        assert refused.json()["errors"][0]["field"] == "assigneeId"
    missing = await client.post(f"{path}/assign", json={}, headers=agent.auth)
    assert missing.status_code == 400
    unassigned = await client.post(f"{path}/assign", json={"assigneeId": None}, headers=agent.auth)
    assert unassigned.json()["data"]["assigneeId"] is None
    again = await client.post(f"{path}/assign", json={"assigneeId": None}, headers=agent.auth)
    assert again.status_code == 200
    assert [a for a, _ in await logs_of(database, ticket["id"])] == [
        "create",
        "assign",
        "unassign",
        "assign",
        "unassign",
    ]
    assert (
        await scalar(database, "SELECT assignee_id FROM tickets WHERE id = :id", id=ticket["id"])
        is None
    )


async def test_agent_list_filters(
    client: httpx.AsyncClient,
    reporter: Person,
    other: Person,
    agent: Person,
    admin: Person,
    file_ticket: FileTicket,
) -> None:
    a = await file_ticket(reporter, "VPN drops")
    b = await file_ticket(other, "VPN slow")
    c = await file_ticket(other, "Mouse gone")
    await client.post(f"/api/tickets/{a['id']}/assign-toggle", headers=agent.auth)
    await client.post(f"/api/tickets/{b['id']}/assign-toggle", headers=admin.auth)
    await client.patch(f"/api/tickets/{b['id']}", json={"status": "pending"}, headers=agent.auth)

    async def ids(**params: str) -> tuple[list[int], int]:
        response = await client.get("/api/tickets", params=params, headers=agent.auth)
        assert response.status_code == 200, response.text
        body = response.json()
        return [t["id"] for t in body["data"]], body["meta"]["pagination"]["total"]

    assert await ids() == ([c["id"], b["id"], a["id"]], 3)
    assert await ids(assigneeId=agent.user.id) == ([a["id"]], 1)
    assert await ids(assigneeId="me") == ([a["id"]], 1)
    assert await ids(assigneeId="none") == ([c["id"]], 1)
    assert await ids(status="pending") == ([b["id"]], 1)
    assert await ids(status="open", assigneeId=admin.user.id) == ([], 0)
    assert await ids(search="vpn") == ([b["id"], a["id"]], 2)
    assert await ids(search="vpn", status="open") == ([a["id"]], 1)
    assert await ids(search="vpn", assigneeId=admin.user.id) == ([b["id"]], 1)
    listed = (await client.get("/api/tickets", headers=admin.auth)).json()["data"][0]
    assert listed["form"]["id"] == c["formId"]


async def test_full_text_search_is_ranked_and_covers_answers_and_public_comments(
    client: httpx.AsyncClient, reporter: Person, agent: Person, file_ticket: FileTicket
) -> None:
    weak = await file_ticket(reporter, "Keyboard sticky")
    strong = await file_ticket(reporter, "Keyboard keyboard missing keys")
    commented = await file_ticket(reporter, "Something else")
    await client.post(
        f"/api/tickets/{commented['id']}/comments",
        json={"body": "Turned out to be the keyboard"},
        headers=agent.auth,
    )
    hidden = await file_ticket(reporter, "Unrelated")
    await client.post(
        f"/api/tickets/{hidden['id']}/comments",
        json={"body": "keyboard in the internal note", "internal": True},
        headers=agent.auth,
    )
    response = await client.get("/api/tickets", params={"q": "keyboard"}, headers=agent.auth)
    body = response.json()
    found = [t["id"] for t in body["data"]]
    assert found[:2] == [strong["id"], weak["id"]]
    assert set(found) == {strong["id"], weak["id"], commented["id"]}
    assert body["meta"]["pagination"]["total"] == 3
    flickers = await client.get("/api/tickets/my", params={"q": "flickers"}, headers=reporter.auth)
    assert len(flickers.json()["data"]) == 4  # the text answer of every ticket
    with_cursor = await client.get(
        "/api/tickets", params={"q": "keyboard", "cursor": ""}, headers=agent.auth
    )
    assert with_cursor.status_code == 400


@pytest.mark.parametrize("limit", [1, 2, 5])
async def test_cursor_pages_walk_every_ticket_once(
    client: httpx.AsyncClient,
    reporter: Person,
    agent: Person,
    file_ticket: FileTicket,
    limit: int,
) -> None:
    created = [(await file_ticket(reporter, f"T{i}"))["id"] for i in range(7)]
    for path, who in (("/api/tickets", agent), ("/api/tickets/my", reporter)):
        seen: list[int] = []
        cursor = ""
        while cursor is not None:
            response = await client.get(
                path, params={"cursor": cursor, "limit": limit}, headers=who.auth
            )
            assert response.status_code == 200
            body = response.json()
            assert body["meta"]["pagination"]["total"] == 7
            seen += [t["id"] for t in body["data"]]
            cursor = body["meta"]["nextCursor"]
        assert seen == sorted(created, reverse=True)


async def test_agent_bad_input_is_a_clear_error_never_a_500(
    client: httpx.AsyncClient,
    agent: Person,
    ticket: dict[str, Any],
    database: Database,
) -> None:
    calls = [
        ("PATCH", "/api/tickets/abc", {"status": "closed"}, 400),
        ("DELETE", "/api/tickets/1.5", None, 400),
        ("POST", "/api/tickets/99999999999/assign-toggle", None, 400),
        ("PATCH", "/api/tickets/424242", {"status": "closed"}, 404),
        ("DELETE", "/api/tickets/424242", None, 404),
        ("POST", "/api/tickets/424242/assign-toggle", None, 404),
        ("POST", "/api/tickets/424242/assign", {"assigneeId": agent.user.id}, 404),
        ("POST", "/api/tickets/424242/open-form", None, 404),
        ("GET", "/api/tickets/424242/logs", None, 404),
        ("GET", "/api/tickets/424242/comments", None, 404),
        ("PATCH", f"/api/tickets/{ticket['id']}", {"status": "nope", "extra": 1}, 400),
        ("PATCH", f"/api/tickets/{ticket['id']}", [1, 2], 400),
        ("GET", "/api/tickets?limit=101", None, 400),
        ("GET", "/api/tickets?status=ALL", None, 400),
        ("GET", "/api/tickets?search=" + "x" * 201, None, 400),
    ]
    for method, path, body, status in calls:
        response = await client.request(method, path, json=body, headers=agent.auth)
        assert response.status_code == status, (method, path, response.text)
        assert response.json()["status"] == "error"
    broken = await client.patch(
        f"/api/tickets/{ticket['id']}",
        content=b"{not json",
        headers={**agent.auth, "Content-Type": "application/json"},
    )
    assert broken.status_code == 400
    assert await scalar(database, "SELECT count(*) FROM ticket_logs") == 1


@pytest.mark.parametrize(
    ("who", "query", "field"),
    [
        ("agent", "page=abc", "page"),
        ("agent", "page=0", "page"),
        ("agent", "limit=0", "limit"),
        ("agent", "sort=bogus", "sort"),
        ("agent", "priority=sometime", "priority"),
        ("agent", "status=nope", "status"),
        ("agent", "teamId=" + "t" * 201, "teamId"),
        ("agent", "assigneeId=" + "a" * 201, "assigneeId"),
        ("agent", "tag=" + "x" * 201, "tag"),
        ("agent", "cursor=" + "c" * 201, "cursor"),
        ("reporter", "limit=abc", "limit"),
        ("reporter", "status=ALL", "status"),
        ("reporter", "q=" + "q" * 201, "q"),
    ],
)
async def test_list_query_garbage_names_the_parameter(
    client: httpx.AsyncClient, agent: Person, reporter: Person, who: str, query: str, field: str
) -> None:
    """The lists read their query string as one model: a bad value is a 400 that names the
    parameter as the client spelt it (camelCase), never a 500."""
    person, path = (agent, "/api/tickets") if who == "agent" else (reporter, "/api/tickets/my")
    response = await client.get(f"{path}?{query}", headers=person.auth)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert [error["field"] for error in body["errors"]] == [field]


async def test_nul_characters_are_a_clear_error_and_store_nothing(
    client: httpx.AsyncClient,
    agent: Person,
    reporter: Person,
    ticket: dict[str, Any],
    database: Database,
) -> None:
    """PostgreSQL cannot store U+0000; whichever path a value takes, it is refused with 400."""
    tid = ticket["id"]
    good = {"category": "hardware", "description": "ok"}
    calls: list[tuple[Person, str, str, Any, str]] = [
        (reporter, "GET", "/api/tickets/my?search=a%00b", None, "VALIDATION_ERROR"),
        (reporter, "GET", "/api/tickets/my?q=a%00b", None, "VALIDATION_ERROR"),
        (agent, "GET", "/api/tickets?search=%00", None, "VALIDATION_ERROR"),
        (agent, "GET", "/api/tickets?assigneeId=%00", None, "VALIDATION_ERROR"),
        (
            reporter,
            "POST",
            "/api/tickets/my",
            {"formId": "it-support\x00", "summary": "x"},
            "VALIDATION_ERROR",
        ),
        (
            reporter,
            "POST",
            "/api/tickets/my",
            {"formId": "it-support", "summary": "a\x00b", "formResponse": good},
            "VALIDATION_ERROR",
        ),
        (
            reporter,
            "POST",
            "/api/tickets/my",
            {
                "formId": "it-support",
                "summary": "fine",
                "formResponse": {**good, "description": "nul \x00 here"},
            },
            "INVALID_FORM_DATA",  # the forms engine names the field
        ),
        (agent, "PATCH", f"/api/tickets/{tid}", {"summary": "a\x00b"}, "VALIDATION_ERROR"),
        (agent, "POST", f"/api/tickets/{tid}/comments", {"body": "a\x00b"}, "VALIDATION_ERROR"),
        (
            reporter,
            "POST",
            f"/api/tickets/my/{tid}/comments",
            {"body": "a\x00b"},
            "VALIDATION_ERROR",
        ),
    ]
    for person, method, path, body, code in calls:
        response = await client.request(method, path, json=body, headers=person.auth)
        assert response.status_code == 400, (method, path, response.text)
        assert response.json()["code"] == code, response.text
    assert await scalar(database, "SELECT count(*) FROM tickets") == 1
    assert await scalar(database, "SELECT count(*) FROM ticket_comments") == 0
    assert await scalar(database, "SELECT count(*) FROM ticket_logs") == 1
    assert await scalar(database, "SELECT summary FROM tickets") == ticket["summary"]
