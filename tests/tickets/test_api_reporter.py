"""The customer's side of tickets over HTTP: filing, lists, reading, editing, logs, replies."""

from __future__ import annotations

from typing import Any

import httpx

from tekudasai.db.session import Database
from tekudasai.forms.models import Form, FormVersion
from tekudasai.uploads.models import Upload
from tests.factories import Person
from tests.tickets.conftest import GOOD_RESPONSE, FileTicket, make_form, scalar

TICKET_KEYS = {
    "id",
    "reporterId",
    "assigneeId",
    "summary",
    "status",
    "formId",
    "formResponse",
    "formOpen",
    "createdAt",
    "updatedAt",
    "channel",
    # Service levels (#15).
    "priority",
    "teamId",
    "tags",
    "firstRespondedAt",
    "resolvedAt",
    "sla",
}


async def count_tickets(database: Database) -> int:
    return int(await scalar(database, "SELECT count(*) FROM tickets"))


async def count_logs(database: Database) -> int:
    return int(await scalar(database, "SELECT count(*) FROM ticket_logs"))


async def test_create_returns_the_ticket_and_logs_it(
    client: httpx.AsyncClient, reporter: Person, form: Form, database: Database
) -> None:
    response = await client.post(
        "/api/tickets/my",
        json={"formId": form.id, "summary": "  Laptop dead  ", "formResponse": GOOD_RESPONSE},
        headers=reporter.auth,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    ticket = body["data"]
    assert set(ticket) == TICKET_KEYS
    assert ticket["summary"] == "Laptop dead"
    assert ticket["status"] == "open"
    assert ticket["formOpen"] is False
    assert ticket["reporterId"] == reporter.user.id
    assert ticket["assigneeId"] is None
    assert ticket["formResponse"] == GOOD_RESPONSE
    assert ticket["createdAt"].endswith("Z")
    row = await scalar(
        database,
        "SELECT row(action_type, action, user_id, form_version)::text FROM ticket_logs"
        " JOIN tickets ON tickets.id = ticket_logs.ticket_id WHERE ticket_id = :id",
        id=ticket["id"],
    )
    assert row == f'(create,"Ticket created",{reporter.user.id},1)'


async def test_create_with_unknown_or_disabled_form_is_404(
    client: httpx.AsyncClient, reporter: Person, database: Database
) -> None:
    await make_form(database, form_id="off", disabled=True)
    for form_id in ("nope", "off"):
        response = await client.post(
            "/api/tickets/my",
            json={"formId": form_id, "summary": "x", "formResponse": GOOD_RESPONSE},
            headers=reporter.auth,
        )
        assert response.status_code == 404
        assert response.json()["code"] == "NOT_FOUND"
    assert await count_tickets(database) == 0


async def test_invalid_response_is_400_with_field_errors_and_nothing_stored(
    client: httpx.AsyncClient, reporter: Person, form: Form, database: Database
) -> None:
    response = await client.post(
        "/api/tickets/my",
        json={"formId": form.id, "summary": "Broken", "formResponse": {"category": "banana"}},
        headers=reporter.auth,
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "INVALID_FORM_DATA"
    assert {e["field"] for e in body["errors"]} >= {"category", "description"}
    assert await count_tickets(database) == 0
    assert await count_logs(database) == 0


async def test_bad_summaries_are_refused_and_nothing_stored(
    client: httpx.AsyncClient, reporter: Person, form: Form, database: Database
) -> None:
    cases = [
        ("", 400),
        ("   ", 400),
        ("x" * 501, 400),
        ("x" * 600_000, 400),
        ("x" * 1_100_000, 413),
    ]
    for summary, status in cases:
        response = await client.post(
            "/api/tickets/my",
            json={"formId": form.id, "summary": summary, "formResponse": GOOD_RESPONSE},
            headers=reporter.auth,
        )
        assert response.status_code == status, (len(summary), response.text[:200])
        assert response.json()["code"] in {"VALIDATION_ERROR", "PAYLOAD_TOO_LARGE"}
    missing = await client.post(
        "/api/tickets/my", json={"formId": form.id, "formResponse": {}}, headers=reporter.auth
    )
    assert missing.status_code == 400
    assert await count_tickets(database) == 0
    assert await count_logs(database) == 0


async def test_signed_out_is_401(client: httpx.AsyncClient, form: Form) -> None:
    assert (await client.get("/api/tickets/my")).status_code == 401
    response = await client.post(
        "/api/tickets/my", json={"formId": form.id, "summary": "x", "formResponse": {}}
    )
    assert response.status_code == 401


async def test_my_list_is_mine_newest_first_with_form_and_meta(
    client: httpx.AsyncClient, reporter: Person, other: Person, file_ticket: FileTicket
) -> None:
    mine = [await file_ticket(reporter, f"Mine {i}") for i in range(3)]
    await file_ticket(other, "Not mine")
    response = await client.get("/api/tickets/my?limit=2", headers=reporter.auth)
    assert response.status_code == 200
    body = response.json()
    assert [t["id"] for t in body["data"]] == [mine[2]["id"], mine[1]["id"]]
    assert body["meta"]["pagination"] == {"page": 1, "limit": 2, "total": 3, "totalPages": 2}
    first = body["data"][0]
    assert set(first) == TICKET_KEYS | {"form"}
    assert first["form"]["id"] == "it-support"
    assert first["form"]["hasTickets"] is True
    assert [e["name"] for e in first["form"]["elements"]] == ["category", "description"]
    page2 = (await client.get("/api/tickets/my?limit=2&page=2", headers=reporter.auth)).json()
    assert [t["id"] for t in page2["data"]] == [mine[0]["id"]]
    empty = (await client.get("/api/tickets/my?page=9", headers=reporter.auth)).json()
    assert empty["data"] == [] and empty["meta"]["pagination"]["total"] == 3


async def test_search_is_a_literal_case_insensitive_substring(
    client: httpx.AsyncClient, reporter: Person, file_ticket: FileTicket
) -> None:
    await file_ticket(reporter, "100% broken printer")
    await file_ticket(reporter, "Printer 1000 broken")
    await file_ticket(reporter, "snake_case path C:\\temp")
    await file_ticket(reporter, "snakeXcase")

    async def summaries(term: str) -> list[str]:
        response = await client.get(
            "/api/tickets/my", params={"search": term}, headers=reporter.auth
        )
        assert response.status_code == 200
        return sorted(t["summary"] for t in response.json()["data"])

    assert await summaries("PRINTER") == ["100% broken printer", "Printer 1000 broken"]
    assert await summaries("0%") == ["100% broken printer"]
    assert await summaries("e_c") == ["snake_case path C:\\temp"]
    assert await summaries("C:\\t") == ["snake_case path C:\\temp"]
    assert await summaries("%") == ["100% broken printer"]
    assert await summaries("nothing like it") == []


async def test_status_filter_and_bad_query_parameters(
    client: httpx.AsyncClient,
    reporter: Person,
    agent: Person,
    file_ticket: FileTicket,
) -> None:
    first = await file_ticket(reporter, "One")
    await file_ticket(reporter, "Two")
    await client.patch(
        f"/api/tickets/{first['id']}", json={"status": "pending"}, headers=agent.auth
    )

    async def ids(**params: str) -> list[int]:
        response = await client.get("/api/tickets/my", params=params, headers=reporter.auth)
        assert response.status_code == 200
        return [t["id"] for t in response.json()["data"]]

    assert await ids(status="pending") == [first["id"]]
    assert len(await ids(status="all")) == 2
    assert len(await ids(status="open")) == 1
    for params in (
        {"status": "weird"},
        {"limit": "101"},
        {"limit": "0"},
        {"page": "0"},
        {"page": "x"},
        {"cursor": "not a cursor"},
    ):
        response = await client.get("/api/tickets/my", params=params, headers=reporter.auth)
        assert response.status_code == 400, params
        assert response.json()["code"] == "VALIDATION_ERROR"


async def test_read_own_ticket_but_never_someone_elses(
    client: httpx.AsyncClient, reporter: Person, other: Person, ticket: dict[str, Any]
) -> None:
    mine = await client.get(f"/api/tickets/my/{ticket['id']}", headers=reporter.auth)
    assert mine.status_code == 200
    assert mine.json()["data"]["form"]["name"] == "Form it-support"
    for path in ("", "/logs", "/comments"):
        response = await client.get(f"/api/tickets/my/{ticket['id']}{path}", headers=other.auth)
        assert response.status_code == 404, path
        assert response.json()["code"] == "NOT_FOUND"
    reply = await client.post(
        f"/api/tickets/my/{ticket['id']}/comments", json={"body": "hi"}, headers=other.auth
    )
    assert reply.status_code == 404


async def test_non_integer_and_out_of_range_ids_are_400_never_500(
    client: httpx.AsyncClient, reporter: Person, agent: Person
) -> None:
    for ident in ("abc", "1.5", "-1", "0", "99999999999", "1e3"):
        for path, who in ((f"/api/tickets/my/{ident}", reporter), (f"/api/tickets/{ident}", agent)):
            response = await client.get(path, headers=who.auth)
            assert response.status_code in (400, 404), (path, response.text)
            assert response.json()["status"] == "error"
    missing = await client.get("/api/tickets/my/2147483647", headers=reporter.auth)
    assert missing.status_code == 404


async def test_form_edit_only_while_an_agent_has_reopened_it(
    client: httpx.AsyncClient,
    reporter: Person,
    agent: Person,
    ticket: dict[str, Any],
    database: Database,
) -> None:
    path = f"/api/tickets/my/{ticket['id']}"
    changed = {"category": "software", "description": "Actually the driver"}
    closed = await client.patch(path, json={"formResponse": changed}, headers=reporter.auth)
    assert closed.status_code == 400
    assert closed.json()["code"] == "FORM_CLOSED"

    opened = await client.post(f"/api/tickets/{ticket['id']}/open-form", headers=agent.auth)
    assert opened.status_code == 200 and opened.json()["data"]["formOpen"] is True
    bad = await client.patch(path, json={"formResponse": {"category": "x"}}, headers=reporter.auth)
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_FORM_DATA"

    edited = await client.patch(path, json={"formResponse": changed}, headers=reporter.auth)
    assert edited.status_code == 200, edited.text
    assert edited.json()["data"]["formResponse"] == changed
    assert edited.json()["data"]["formOpen"] is False
    again = await client.patch(path, json={"formResponse": GOOD_RESPONSE}, headers=reporter.auth)
    assert again.json()["code"] == "FORM_CLOSED"
    stored = await scalar(
        database, "SELECT form_response->>'category' FROM tickets WHERE id = :id", id=ticket["id"]
    )
    assert stored == "software"

    logs = (await client.get(f"{path}/logs", headers=reporter.auth)).json()["data"]
    assert [log["actionType"] for log in logs] == ["create", "open_form", "update"]
    assert set(logs[-1]) == {
        "id",
        "ticketId",
        "userId",
        "actionType",
        "action",
        "details",
        "createdAt",
    }
    assert logs[-1]["details"]["formResponse"]["category"] == {"from": "hardware", "to": "software"}


async def test_conversation_hides_internal_notes_and_a_reply_reopens_resolved(
    client: httpx.AsyncClient,
    reporter: Person,
    agent: Person,
    ticket: dict[str, Any],
) -> None:
    tid = ticket["id"]
    public = await client.post(
        f"/api/tickets/{tid}/comments", json={"body": "We are on it"}, headers=agent.auth
    )
    assert public.status_code == 200
    note = await client.post(
        f"/api/tickets/{tid}/comments",
        json={"body": "Customer seems confused", "internal": True},
        headers=agent.auth,
    )
    assert note.status_code == 200 and note.json()["data"]["internal"] is True
    await client.patch(f"/api/tickets/{tid}", json={"status": "resolved"}, headers=agent.auth)

    reply = await client.post(
        f"/api/tickets/my/{tid}/comments", json={"body": "Still broken"}, headers=reporter.auth
    )
    assert reply.status_code == 200, reply.text
    comment = reply.json()["data"]
    assert set(comment) == {
        "id",
        "ticketId",
        "authorId",
        "author",
        "body",
        "internal",
        "channel",
        "createdAt",
    }
    assert comment["author"]["name"] == reporter.name and comment["author"]["role"] == "user"
    mine = (await client.get(f"/api/tickets/my/{tid}", headers=reporter.auth)).json()["data"]
    assert mine["status"] == "open"

    seen = (await client.get(f"/api/tickets/my/{tid}/comments", headers=reporter.auth)).json()
    assert [c["body"] for c in seen["data"]] == ["We are on it", "Still broken"]
    everything = (await client.get(f"/api/tickets/{tid}/comments", headers=agent.auth)).json()
    assert [c["body"] for c in everything["data"]] == [
        "We are on it",
        "Customer seems confused",
        "Still broken",
    ]
    assert everything["data"][0]["author"]["role"] == "agent"

    my_logs = (await client.get(f"/api/tickets/my/{tid}/logs", headers=reporter.auth)).json()
    actions = [log["action"] for log in my_logs["data"]]
    assert "Internal note added" not in actions
    assert actions[-1] == "Ticket status updated from resolved to open"
    agent_logs = (await client.get(f"/api/tickets/{tid}/logs", headers=agent.auth)).json()
    assert "Internal note added" in [log["action"] for log in agent_logs["data"]]


async def test_bad_comments_are_refused(
    client: httpx.AsyncClient,
    reporter: Person,
    agent: Person,
    ticket: dict[str, Any],
    database: Database,
) -> None:
    tid = ticket["id"]
    for body in (
        {"body": ""},
        {"body": "   "},
        {"body": "x" * 20_001},
        {},
        {"body": "x", "internal": True},
    ):
        response = await client.post(
            f"/api/tickets/my/{tid}/comments", json=body, headers=reporter.auth
        )
        assert response.status_code == 400, body
    deleted = await client.delete(f"/api/tickets/{tid}", headers=agent.auth)
    assert deleted.status_code == 200
    for path, who in (
        (f"/api/tickets/my/{tid}/comments", reporter),
        (f"/api/tickets/{tid}/comments", agent),
    ):
        response = await client.post(path, json={"body": "hello?"}, headers=who.auth)
        assert response.status_code == 404
    assert await scalar(database, "SELECT count(*) FROM ticket_comments") == 0
    assert (
        await scalar(database, "SELECT count(*) FROM ticket_logs WHERE action_type = 'comment'")
        == 0
    )


async def test_file_answers_link_the_reporters_uploads_only(
    client: httpx.AsyncClient,
    reporter: Person,
    other: Person,
    agent: Person,
    database: Database,
) -> None:
    elements = [
        {"id": "e1", "type": "textarea", "name": "description", "label": "What?", "required": True},
        {
            "id": "e2",
            "type": "file-upload",
            "name": "screenshot",
            "label": "Shot",
            "required": False,
        },
    ]
    async with database.sessionmaker() as db, db.begin():
        db.add(Form(id="with-file", name="With file", elements=elements, version=1))
        await db.flush()
        db.add(FormVersion(form_id="with-file", version=1, name="With file", elements=elements))
        for owner, upload_id in ((reporter, "a" * 32), (other, "b" * 32)):
            db.add(
                Upload(
                    id=upload_id,
                    uploader_id=owner.user.id,
                    original_name="shot.png",
                    mime_type="image/png",
                    size=10,
                    sha256="0" * 64,
                    storage_key=upload_id,
                )
            )

    async def file(upload_id: str) -> httpx.Response:
        return await client.post(
            "/api/tickets/my",
            json={
                "formId": "with-file",
                "summary": "See screenshot",
                "formResponse": {"description": "look", "screenshot": upload_id},
            },
            headers=reporter.auth,
        )

    foreign = await file("b" * 32)
    assert foreign.status_code == 400, foreign.text
    assert foreign.json()["code"] == "INVALID_FORM_DATA"
    assert await count_tickets(database) == 0

    created = await file("a" * 32)
    assert created.status_code == 200, created.text
    ticket = created.json()["data"]
    assert ticket["formResponse"]["screenshot"]["filename"] == "a" * 32
    links = await scalar(
        database,
        "SELECT string_agg(upload_id, ',') FROM ticket_uploads WHERE ticket_id = :id",
        id=ticket["id"],
    )
    assert links == "a" * 32
    # An agent's edit that drops the file drops the link too.
    await client.patch(
        f"/api/tickets/{ticket['id']}",
        json={"formResponse": {"description": "no picture"}},
        headers=agent.auth,
    )
    assert await scalar(database, "SELECT count(*) FROM ticket_uploads") == 0
