"""The ticket's service-level fields over HTTP: the object, the agent list's filters and sorts,
first response and resolution times, and the agent's PATCH of priority, team and tags (#15)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from tekudasai.core.schemas import iso
from tekudasai.db.session import Database
from tests.factories import Person
from tests.tickets.conftest import FileTicket, scalar

SLA_KEYS = {"policyId", "firstResponseDueAt", "resolutionDueAt", "state"}


async def execute(database: Database, sql: str, **params: Any) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(text(sql), params)


async def make_team(database: Database, name: str) -> str:
    team_id = f"team-{name}"
    await execute(
        database, "INSERT INTO teams (id, name) VALUES (:id, :name)", id=team_id, name=name
    )
    return team_id


async def make_policy(database: Database) -> str:
    await execute(
        database,
        "INSERT INTO business_calendars (id, name, timezone, hours, holidays)"
        " VALUES ('cal', 'Office', 'UTC', '{}', '[]')",
    )
    await execute(
        database,
        "INSERT INTO sla_policies (id, name, conditions, calendar_id, first_response_minutes,"
        " resolution_minutes) VALUES ('pol', 'Standard', '{}', 'cal', 60, 480)",
    )
    return "pol"


async def set_due(database: Database, ticket_id: int, due: datetime | None) -> None:
    await execute(
        database,
        "UPDATE tickets SET sla_policy_id = 'pol', sla_state = 'running',"
        " sla_first_response_due_at = :due, sla_resolution_due_at = :due, sla_due_at = :due"
        " WHERE id = :id",
        id=ticket_id,
        due=due,
    )


async def agent_list(
    client: httpx.AsyncClient, agent: Person, **params: Any
) -> list[dict[str, Any]]:
    response = await client.get("/api/tickets", params=params, headers=agent.auth)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def ids(tickets: list[dict[str, Any]]) -> list[int]:
    return [t["id"] for t in tickets]


# -- the ticket object ------------------------------------------------------------------------


async def test_a_new_ticket_has_the_fields_everywhere_it_is_shown(
    client: httpx.AsyncClient, reporter: Person, agent: Person, file_ticket: FileTicket
) -> None:
    created = await file_ticket(reporter)
    expected = {
        "priority": "normal",
        "teamId": None,
        "tags": [],
        "firstRespondedAt": None,
        "resolvedAt": None,
        "sla": None,
    }
    tid = created["id"]
    views = [
        created,
        (await client.get(f"/api/tickets/{tid}", headers=agent.auth)).json()["data"],
        (await client.get(f"/api/tickets/my/{tid}", headers=reporter.auth)).json()["data"],
        (await client.get("/api/tickets/my", headers=reporter.auth)).json()["data"][0],
        (await agent_list(client, agent))[0],
    ]
    for view in views:
        assert {key: view[key] for key in expected} == expected
        # Nothing the original had is gone.
        assert {"id", "reporterId", "assigneeId", "summary", "status", "formOpen"} <= set(view)


async def test_the_sla_object_comes_from_its_columns(
    client: httpx.AsyncClient,
    database: Database,
    reporter: Person,
    agent: Person,
    file_ticket: FileTicket,
) -> None:
    policy = await make_policy(database)
    tid = (await file_ticket(reporter))["id"]
    due = datetime(2026, 3, 4, 5, 6, 7, 891_000, tzinfo=UTC)
    await set_due(database, tid, due)
    await execute(
        database,
        "UPDATE tickets SET sla_state = 'warning', sla_resolution_due_at = NULL WHERE id = :id",
        id=tid,
    )
    detail = (await client.get(f"/api/tickets/{tid}", headers=agent.auth)).json()["data"]
    listed = (await agent_list(client, agent))[0]
    mine = (await client.get(f"/api/tickets/my/{tid}", headers=reporter.auth)).json()["data"]
    for view in (detail, listed, mine):
        assert view["sla"] == {
            "policyId": policy,
            "firstResponseDueAt": "2026-03-04T05:06:07.891Z",
            "resolutionDueAt": None,
            "state": "warning",
        }


# -- filters ----------------------------------------------------------------------------------


async def test_filters_by_priority_team_and_tag(
    client: httpx.AsyncClient,
    database: Database,
    reporter: Person,
    agent: Person,
    file_ticket: FileTicket,
) -> None:
    team = await make_team(database, "printers")
    a = (await file_ticket(reporter, "A"))["id"]
    b = (await file_ticket(reporter, "B"))["id"]
    c = (await file_ticket(reporter, "C"))["id"]
    for tid, body in (
        (a, {"priority": "urgent", "teamId": team, "tags": ["Printer", "vip"]}),
        (b, {"priority": "urgent", "tags": ["printer"]}),
        (c, {"priority": "low", "teamId": team}),
    ):
        response = await client.patch(f"/api/tickets/{tid}", json=body, headers=agent.auth)
        assert response.status_code == 200, response.text

    assert ids(await agent_list(client, agent, priority="urgent")) == [b, a]
    assert ids(await agent_list(client, agent, priority="low")) == [c]
    assert ids(await agent_list(client, agent, teamId=team)) == [c, a]
    assert ids(await agent_list(client, agent, teamId="none")) == [b]
    assert ids(await agent_list(client, agent, tag=" PRINTER ")) == [b, a]
    assert ids(await agent_list(client, agent, tag="vip", priority="urgent", teamId=team)) == [a]
    assert await agent_list(client, agent, tag="nothing") == []
    assert ids(await agent_list(client, agent, tag="", teamId="")) == [c, b, a]
    page = await client.get(
        "/api/tickets", params={"priority": "urgent", "limit": 1}, headers=agent.auth
    )
    assert page.json()["meta"]["pagination"]["total"] == 2  # counted exactly, not capped
    assert "totalCapped" not in page.json()["meta"]["pagination"]


async def test_bad_filter_and_sort_values_are_400_with_a_field(
    client: httpx.AsyncClient, agent: Person, ticket: dict[str, Any]
) -> None:
    for params, field in (
        ({"priority": "critical"}, "priority"),
        ({"sort": "summary"}, "sort"),
        ({"sort": "-dueAt"}, "sort"),
        ({"sort": "dueAt", "cursor": "bm9wZQ"}, "cursor"),
    ):
        response = await client.get("/api/tickets", params=params, headers=agent.auth)
        assert response.status_code == 400, (params, response.text)
        body = response.json()
        assert body["code"] in ("VALIDATION_ERROR", "INVALID_CURSOR"), body
        assert body["errors"][0]["field"] == field


async def test_the_tag_filter_uses_the_gin_index(database: Database) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = (
            await conn.execute(
                text("EXPLAIN SELECT id FROM tickets WHERE tags @> ARRAY[CAST('x' AS text)]")
            )
        ).scalars()
        assert "ix_tickets_tags" in "\n".join(plan)


# -- sorts ------------------------------------------------------------------------------------


async def _file_many(file_ticket: FileTicket, reporter: Person, count: int) -> list[int]:
    return [(await file_ticket(reporter, f"T{n}"))["id"] for n in range(count)]


async def test_sort_by_creation_and_update(
    client: httpx.AsyncClient,
    database: Database,
    reporter: Person,
    agent: Person,
    file_ticket: FileTicket,
) -> None:
    t1, t2, t3 = await _file_many(file_ticket, reporter, 3)
    assert ids(await agent_list(client, agent)) == [t3, t2, t1]
    assert ids(await agent_list(client, agent, sort="-createdAt")) == [t3, t2, t1]
    assert ids(await agent_list(client, agent, sort="createdAt")) == [t1, t2, t3]
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for tid, minutes in ((t1, 30), (t2, 10), (t3, 20)):
        await execute(
            database,
            "UPDATE tickets SET updated_at = :at WHERE id = :id",
            id=tid,
            at=base + timedelta(minutes=minutes),
        )
    assert ids(await agent_list(client, agent, sort="updatedAt")) == [t2, t3, t1]
    assert ids(await agent_list(client, agent, sort="-updatedAt")) == [t1, t3, t2]


async def test_sort_by_due_time_then_without_sla(
    client: httpx.AsyncClient,
    database: Database,
    reporter: Person,
    agent: Person,
    file_ticket: FileTicket,
) -> None:
    await make_policy(database)
    t = await _file_many(file_ticket, reporter, 6)
    now = datetime.now(UTC)
    await set_due(database, t[4], now + timedelta(hours=1))
    await set_due(database, t[1], now - timedelta(minutes=5))  # overdue: first
    await set_due(database, t[2], now + timedelta(hours=1))  # same due: by id
    await set_due(database, t[0], now + timedelta(hours=3))
    # A paused clock has no due time: among the tickets without one.
    await set_due(database, t[5], None)
    expected = [t[1], t[2], t[4], t[0], t[3], t[5]]
    assert ids(await agent_list(client, agent, sort="dueAt")) == expected
    # Offset pages of two.
    paged = []
    for page in (1, 2, 3):
        paged += ids(await agent_list(client, agent, sort="dueAt", limit=2, page=page))
    assert paged == expected
    # Filters combine with the sort.
    await client.patch(f"/api/tickets/{t[2]}", json={"status": "pending"}, headers=agent.auth)
    assert ids(await agent_list(client, agent, sort="dueAt", status="open")) == [
        t[1],
        t[4],
        t[0],
        t[3],
        t[5],
    ]


async def test_sort_by_priority_newest_first_within(
    client: httpx.AsyncClient, reporter: Person, agent: Person, file_ticket: FileTicket
) -> None:
    t = await _file_many(file_ticket, reporter, 6)
    priorities = ["low", "urgent", "normal", "high", "urgent", "low"]
    for tid, priority in zip(t, priorities, strict=True):
        await client.patch(f"/api/tickets/{tid}", json={"priority": priority}, headers=agent.auth)
    expected = [t[4], t[1], t[3], t[2], t[5], t[0]]
    assert ids(await agent_list(client, agent, sort="priority")) == expected
    assert ids(await agent_list(client, agent, sort="priority", limit=4, page=2)) == expected[4:]


async def _walk(
    client: httpx.AsyncClient, agent: Person, **params: Any
) -> tuple[list[int], list[str]]:
    seen: list[int] = []
    cursors: list[str] = []
    cursor = ""
    while True:
        response = await client.get(
            "/api/tickets", params={**params, "cursor": cursor, "limit": 2}, headers=agent.auth
        )
        assert response.status_code == 200, response.text
        body = response.json()
        seen += ids(body["data"])
        cursor = body["meta"]["nextCursor"]
        if cursor is None:
            return seen, cursors
        cursors.append(cursor)


async def test_cursor_pages_follow_every_sort(
    client: httpx.AsyncClient,
    database: Database,
    reporter: Person,
    agent: Person,
    file_ticket: FileTicket,
) -> None:
    await make_policy(database)
    t = await _file_many(file_ticket, reporter, 7)
    now = datetime.now(UTC).replace(microsecond=123_456)
    for offset, tid in enumerate((t[5], t[2], t[6])):
        await set_due(database, tid, now + timedelta(minutes=offset))
    for tid, priority in ((t[0], "urgent"), (t[3], "high"), (t[6], "urgent"), (t[1], "low")):
        await client.patch(f"/api/tickets/{tid}", json={"priority": priority}, headers=agent.auth)
    for sort in ("createdAt", "-createdAt", "updatedAt", "-updatedAt", "dueAt", "priority"):
        whole = ids(await agent_list(client, agent, sort=sort, limit=100))
        walked, cursors = await _walk(client, agent, sort=sort)
        assert walked == whole, sort
        assert len(walked) == 7
        assert len(cursors) == 3
    assert ids(await agent_list(client, agent, sort="dueAt", limit=3)) == [t[5], t[2], t[6]]
    # A cursor belongs to its sort.
    _, cursors = await _walk(client, agent, sort="dueAt")
    other = await client.get(
        "/api/tickets", params={"sort": "priority", "cursor": cursors[0]}, headers=agent.auth
    )
    assert other.status_code == 400


async def test_due_time_sort_reads_the_partial_index(
    database: Database, reporter: Person, agent: Person, file_ticket: FileTicket
) -> None:
    """A few thousand tickets, a tenth with a due time: page 1 and a cursor page of the due
    sort are read from ix_tickets_sla_due_at_id (the priority sort from its index), not by
    sorting the table (the priority sort may equally walk the primary key per priority,
    when each priority is common)."""
    from tekudasai.tickets import listing

    await make_policy(database)
    await file_ticket(reporter)
    await execute(
        database,
        "INSERT INTO tickets (reporter_id, summary, form_id, form_version, form_response,"
        " sla_policy_id, sla_state, sla_due_at, priority)"
        " SELECT reporter_id, 'bulk ' || n, form_id, form_version, form_response,"
        " CASE WHEN n % 10 = 0 THEN 'pol' END, CASE WHEN n % 10 = 0 THEN 'running' END,"
        " CASE WHEN n % 10 = 0 THEN now() + n * interval '1 minute' END,"
        " (ARRAY['low', 'normal', 'high', 'urgent'])[n % 4 + 1]"
        " FROM tickets, generate_series(1, 4000) AS n",
    )
    await execute(database, "ANALYZE tickets")
    due = listing.TicketFilter(sort="dueAt")
    cursor = listing.encode_sort_cursor(
        "dueAt", listing.SortCursor(0, datetime.now(UTC) + timedelta(hours=30), 10**6)
    )
    by_priority = listing.TicketFilter(sort="priority")
    deep = listing.encode_sort_cursor("priority", listing.SortCursor(2, None, 3000))
    async with database.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        for spec, page_cursor, index in (  # index: the ones that may serve it
            (due, None, {"ix_tickets_sla_due_at_id"}),
            (due, cursor, {"ix_tickets_sla_due_at_id"}),
            (by_priority, None, {"ix_tickets_priority_id", "pk_tickets"}),
            (by_priority, deep, {"ix_tickets_priority_id", "pk_tickets"}),
        ):
            shape = listing._shape(spec, page_cursor)
            statement = listing._raw_list_statement(shape)
            params = listing._params(spec, shape, page=1, limit=20, cursor=page_cursor)
            plan = await driver.fetchval(
                "EXPLAIN (FORMAT JSON) " + statement.sql, *statement.arguments(params)
            )
            plan = json.loads(plan) if isinstance(plan, str) else plan
            nodes = list(_nodes(plan[0]["Plan"]))
            used = {n.get("Index Name") for n in nodes}
            assert used & index, (spec, page_cursor, used)
            assert not [
                n
                for n in nodes
                if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "tickets"
            ]


def _nodes(node: dict[str, Any]) -> Any:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


# -- first response and resolution ------------------------------------------------------------


async def _times(database: Database, tid: int) -> tuple[datetime | None, datetime | None]:
    async with database.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT first_responded_at, resolved_at FROM tickets WHERE id = :id"),
                {"id": tid},
            )
        ).one()
    return row[0], row[1]


async def test_first_public_agent_reply_sets_first_responded_at_once(
    client: httpx.AsyncClient,
    database: Database,
    reporter: Person,
    agent: Person,
    admin: Person,
    ticket: dict[str, Any],
) -> None:
    tid = ticket["id"]
    path = f"/api/tickets/{tid}/comments"
    await client.post(f"/api/tickets/my/{tid}/comments", json={"body": "hi"}, headers=reporter.auth)
    await client.post(path, json={"body": "note", "internal": True}, headers=agent.auth)
    assert (await _times(database, tid))[0] is None
    reply = await client.post(path, json={"body": "On it"}, headers=agent.auth)
    assert reply.status_code == 200
    first, _ = await _times(database, tid)
    assert first is not None
    created = await scalar(
        database,
        "SELECT created_at FROM ticket_comments WHERE id = :id",
        id=reply.json()["data"]["id"],
    )
    assert first == created  # the reply's own moment
    await client.post(path, json={"body": "Later"}, headers=admin.auth)
    assert (await _times(database, tid))[0] == first
    shown = (await client.get(f"/api/tickets/{tid}", headers=agent.auth)).json()["data"]
    assert shown["firstRespondedAt"] == first.astimezone(UTC).isoformat(
        timespec="milliseconds"
    ).replace("+00:00", "Z")


async def test_an_agents_reply_on_their_own_ticket_is_no_first_response(
    client: httpx.AsyncClient, database: Database, agent: Person, file_ticket: FileTicket
) -> None:
    tid = (await file_ticket(agent))["id"]
    await client.post(f"/api/tickets/{tid}/comments", json={"body": "mine"}, headers=agent.auth)
    assert (await _times(database, tid))[0] is None


async def test_resolved_at_follows_the_status(
    client: httpx.AsyncClient,
    database: Database,
    reporter: Person,
    agent: Person,
    ticket: dict[str, Any],
) -> None:
    tid = ticket["id"]
    path = f"/api/tickets/{tid}"

    async def move(status: str) -> dict[str, Any]:
        response = await client.patch(path, json={"status": status}, headers=agent.auth)
        assert response.status_code == 200, response.text
        return dict(response.json()["data"])

    assert (await move("in_progress"))["resolvedAt"] is None
    resolved = await move("resolved")
    assert resolved["resolvedAt"] is not None
    stamped = (await _times(database, tid))[1]
    assert stamped is not None
    # The answer shows the stored stamp: the transaction's now(), that of updatedAt too.
    assert resolved["resolvedAt"] == iso(stamped) == resolved["updatedAt"]
    closed = await move("closed")
    assert closed["resolvedAt"] == resolved["resolvedAt"]  # closing keeps it
    assert (await move("open"))["resolvedAt"] is None  # reopening clears it
    await move("resolved")
    assert (await _times(database, tid))[1] is not None
    assert (await move("in_progress"))["resolvedAt"] is None
    await move("resolved")
    # A customer's reply reopens a resolved ticket, and clears it too.
    await client.post(f"/api/tickets/my/{tid}/comments", json={"body": "no"}, headers=reporter.auth)
    assert await _times(database, tid) == ((await _times(database, tid))[0], None)
    assert await scalar(database, "SELECT status FROM tickets WHERE id = :id", id=tid) == "open"


# -- PATCH priority, team, tags ---------------------------------------------------------------


async def test_patch_sets_priority_team_and_tags_with_audit_and_event(
    client: httpx.AsyncClient, database: Database, agent: Person, ticket: dict[str, Any]
) -> None:
    team = await make_team(database, "network")
    tid = ticket["id"]
    response = await client.patch(
        f"/api/tickets/{tid}",
        json={"id": tid, "priority": "high", "teamId": team, "tags": [" VPN", "vpn", "Office "]},
        headers=agent.auth,
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["priority"], data["teamId"], data["tags"]) == ("high", team, ["vpn", "office"])
    async with database.engine.connect() as conn:
        log = (
            await conn.execute(
                text(
                    "SELECT user_id, action, details FROM ticket_logs"
                    " WHERE ticket_id = :id AND action_type = 'update' ORDER BY id DESC LIMIT 1"
                ),
                {"id": tid},
            )
        ).one()
        event = (
            await conn.execute(
                text(
                    "SELECT actor_id, data FROM ticket_events"
                    " WHERE ticket_id = :id AND type = 'ticket.updated' ORDER BY id DESC LIMIT 1"
                ),
                {"id": tid},
            )
        ).one()
    assert log[0] == agent.user.id
    assert "priority" in log[1] and "teamId" in log[1] and "tags" in log[1]
    assert log[2]["priority"] == {"from": "normal", "to": "high"}
    assert log[2]["tags"] == {"from": [], "to": ["vpn", "office"]}
    assert event[0] == agent.user.id
    assert event[1]["changes"]["teamId"] == {"from": None, "to": team}
    # null clears the team; an absent teamId leaves it.
    kept = await client.patch(f"/api/tickets/{tid}", json={"priority": "low"}, headers=agent.auth)
    assert kept.json()["data"]["teamId"] == team
    cleared = await client.patch(f"/api/tickets/{tid}", json={"teamId": None}, headers=agent.auth)
    assert cleared.json()["data"]["teamId"] is None


async def test_patch_refuses_bad_priority_team_and_tags(
    client: httpx.AsyncClient, reporter: Person, agent: Person, ticket: dict[str, Any]
) -> None:
    path = f"/api/tickets/{ticket['id']}"
    for body, field in (
        ({"priority": "critical"}, "priority"),
        ({"teamId": "no-such-team"}, "teamId"),
        ({"tags": ["ok", "x" * 51]}, "tags"),
        ({"tags": ["  "]}, "tags"),
        ({"tags": [f"t{n}" for n in range(21)]}, "tags"),
        ({"tags": "not-a-list"}, "tags"),
    ):
        response = await client.patch(path, json=body, headers=agent.auth)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["code"] == "VALIDATION_ERROR"
        assert response.json()["errors"][0]["field"].startswith(field), response.json()
    unchanged = (await client.get(path, headers=agent.auth)).json()["data"]
    assert (unchanged["priority"], unchanged["teamId"], unchanged["tags"]) == ("normal", None, [])
    # Customers do not see the agents' endpoint, their own ticket included.
    refused = await client.patch(path, json={"priority": "urgent"}, headers=reporter.auth)
    assert refused.status_code == 404
    assert refused.json()["code"] == "NOT_FOUND"
    # Nor can they set these through their own edit (unknown keys are ignored).
    mine = await client.patch(
        f"/api/tickets/my/{ticket['id']}",
        json={"formResponse": {}, "priority": "urgent"},
        headers=reporter.auth,
    )
    assert mine.status_code == 400  # FORM_CLOSED: the form is not open for edits
    assert (await client.get(path, headers=agent.auth)).json()["data"]["priority"] == "normal"


# -- a form answer that sets the priority -----------------------------------------------------


def _urgency(**extra: Any) -> dict[str, Any]:
    return {
        "id": "u1",
        "type": "dropdown",
        "name": "urgency",
        "label": "How urgent?",
        "mapsTo": "priority",
        "options": [
            {"id": "o1", "label": "Whenever", "value": "low"},
            {"id": "o2", "label": "Today", "value": "high"},
            {"id": "o3", "label": "Now", "value": "urgent"},
        ],
        **extra,
    }


async def _make_mapped_form(client: httpx.AsyncClient, admin: Person, element: Any) -> Any:
    body = {"name": "Mapped", "description": "", "elements": [element]}
    return await client.post("/api/forms", json=body, headers=admin.auth)


async def test_a_mapped_dropdown_sets_the_priority_at_creation(
    client: httpx.AsyncClient, database: Database, admin: Person, reporter: Person
) -> None:
    created = await _make_mapped_form(client, admin, _urgency())
    assert created.status_code == 200, created.text
    form = created.json()["data"]
    assert form["elements"][0]["mapsTo"] == "priority"

    async def file(response: dict[str, Any]) -> dict[str, Any]:
        body = {"formId": form["id"], "summary": "Mapped", "formResponse": response}
        answer = await client.post("/api/tickets/my", json=body, headers=reporter.auth)
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["data"])

    # Twice each: the first files the long way, the second on the remembered version.
    for _ in range(2):
        urgent = await file({"urgency": "urgent"})
        assert urgent["priority"] == "urgent"
        stored = await scalar(
            database, "SELECT priority FROM tickets WHERE id = :id", id=urgent["id"]
        )
        assert stored == "urgent"
        assert (await file({}))["priority"] == "normal"  # unanswered: the default
        assert (await file({"urgency": "low"}))["priority"] == "low"
    refused = await client.post(
        "/api/tickets/my",
        json={"formId": form["id"], "summary": "x", "formResponse": {"urgency": "normal"}},
        headers=reporter.auth,
    )
    assert refused.status_code == 400  # not one of this dropdown's options
    # A form without mapsTo keeps filing at normal, and radio buttons may map too.
    radio = await _make_mapped_form(client, admin, _urgency(type="radio"))
    assert radio.status_code == 200, radio.text


async def test_bad_maps_to_definitions_are_refused(
    client: httpx.AsyncClient, admin: Person
) -> None:
    text_field = {"id": "t", "type": "text-field", "name": "t", "label": "T", "mapsTo": "priority"}
    bad_option = _urgency()
    bad_option["options"] = [*bad_option["options"], {"id": "o9", "label": "Hm", "value": "asap"}]
    cases: list[tuple[Any, str]] = [
        ([text_field], "elements[0].mapsTo"),
        ([_urgency(type="multi-select")], "elements[0].mapsTo"),
        ([bad_option], "elements[0].mapsTo"),
        ([_urgency(), _urgency(id="u2", name="again")], "elements[1].mapsTo"),
        ([_urgency(mapsTo="status")], "elements[0].mapsTo"),
    ]
    for elements, field in cases:
        body = {"name": "Bad", "description": "", "elements": elements}
        response = await client.post("/api/forms", json=body, headers=admin.auth)
        assert response.status_code == 400, (elements, response.text)
        fields = [e["field"] for e in response.json()["errors"]]
        assert field in fields, (field, response.json())
