"""Totals from ticket_counts agree with counting, and list queries use their indexes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from tekudasai.db import raw
from tekudasai.db.session import Database
from tekudasai.tickets import listing
from tests.factories import Person
from tests.tickets.conftest import FileTicket

TRUTH_SQL = """
SELECT 'all', '', status, count(*) FROM tickets GROUP BY status
UNION ALL SELECT 'reporter', reporter_id, status, count(*) FROM tickets GROUP BY 2, 3
UNION ALL SELECT 'assignee', coalesce(assignee_id, ''), status, count(*) FROM tickets GROUP BY 2, 3
"""
COUNTS_SQL = """
SELECT scope, key, status, sum(n) FROM ticket_counts GROUP BY 1, 2, 3 HAVING sum(n) <> 0
"""


async def _rows(database: Database, sql: str) -> set[tuple[Any, ...]]:
    async with database.engine.connect() as conn:
        return {tuple(r) for r in await conn.execute(text(sql))}


async def test_counts_follow_every_kind_of_change(
    client: httpx.AsyncClient,
    reporter: Person,
    other: Person,
    agent: Person,
    file_ticket: FileTicket,
    database: Database,
) -> None:
    created = await asyncio.gather(*(file_ticket(p) for p in [reporter] * 6 + [other] * 4))
    ids = [t["id"] for t in created]
    await client.patch(f"/api/tickets/{ids[0]}", json={"status": "pending"}, headers=agent.auth)
    await client.patch(f"/api/tickets/{ids[1]}", json={"status": "closed"}, headers=agent.auth)
    await client.patch(f"/api/tickets/{ids[2]}", json={"summary": "Only text"}, headers=agent.auth)
    await client.post(f"/api/tickets/{ids[3]}/assign-toggle", headers=agent.auth)
    await client.post(f"/api/tickets/{ids[4]}/comments", json={"body": "x"}, headers=agent.auth)
    await client.delete(f"/api/tickets/{ids[5]}", headers=agent.auth)
    await client.delete(f"/api/tickets/{ids[6]}", headers=agent.auth)
    assert await _rows(database, COUNTS_SQL) == await _rows(database, TRUTH_SQL)

    body = (await client.get("/api/tickets/my?status=all", headers=reporter.auth)).json()
    assert body["meta"]["pagination"]["total"] == 5
    body = (await client.get("/api/tickets?status=open", headers=agent.auth)).json()
    assert body["meta"]["pagination"]["total"] == 6
    body = (await client.get("/api/tickets?assigneeId=me", headers=agent.auth)).json()
    assert body["meta"]["pagination"]["total"] == 1


BULK_SQL = """
INSERT INTO tickets (reporter_id, assignee_id, summary, status, form_id, form_version,
                     form_response)
SELECT CASE WHEN g % 50 = 0 THEN :reporter ELSE :other END,
       CASE WHEN g % 3 = 0 THEN :agent END,
       'ticket ' || md5(g::text) || CASE WHEN g % 997 = 0 THEN ' zebra' ELSE '' END,
       (ARRAY['open','in_progress','pending','resolved','closed'])[1 + g % 5],
       :form, 1, '{"description": "words"}'
  FROM generate_series(1, :n) AS g
"""


async def _bulk_insert(
    conn: AsyncConnection, *, reporter: Person, other: Person, agent: Person, n: int
) -> None:
    """`n` tickets in one statement, as the bulk seed writes them (form "it-support")."""
    await conn.execute(
        text(BULK_SQL),
        {
            "reporter": reporter.user.id,
            "other": other.user.id,
            "agent": agent.user.id,
            "form": "it-support",
            "n": n,
        },
    )


async def _thirty_thousand_analysed(
    database: Database, file_ticket: FileTicket, *, reporter: Person, other: Person, agent: Person
) -> None:
    """30,000 bulk tickets with fresh statistics, so the planner sees a table worth indexing."""
    await file_ticket(reporter)  # creates the form version the bulk rows reference
    async with database.engine.begin() as conn:
        await _bulk_insert(conn, reporter=reporter, other=other, agent=agent, n=30000)
        await conn.execute(text("ANALYZE tickets"))
        await conn.execute(text("ANALYZE ticket_counts"))


def _sql(statement: Any) -> str:
    return str(statement.compile(dialect=asyncpg.dialect(), compile_kwargs={"literal_binds": True}))


async def _plan(database: Database, statement: Any, *setup: str) -> str:
    async with database.engine.begin() as conn:
        for sql in setup:
            await conn.execute(text(sql))
        rows = await conn.execute(text("EXPLAIN (FORMAT JSON) " + _sql(statement)))
        return json.dumps(rows.scalar())


def _scans(plan: str) -> set[tuple[str, str]]:
    """(node type, relation) of every scan in a JSON plan."""
    found: set[tuple[str, str]] = set()

    def walk(node: dict[str, Any]) -> None:
        if "Relation Name" in node:
            found.add((node["Node Type"], node["Relation Name"]))
        for child in node.get("Plans", []):
            walk(child)

    walk(json.loads(plan)[0]["Plan"])
    return found


async def test_common_lists_use_indexes_and_totals_never_scan_tickets(
    reporter: Person, other: Person, agent: Person, file_ticket: FileTicket, database: Database
) -> None:
    await _thirty_thousand_analysed(
        database, file_ticket, reporter=reporter, other=other, agent=agent
    )

    common = [
        listing.TicketFilter(),
        listing.TicketFilter(status="open"),
        listing.TicketFilter(reporter_id=reporter.user.id),
        listing.TicketFilter(reporter_id=reporter.user.id, status="pending"),
        listing.TicketFilter(assignee_id=agent.user.id),
        listing.TicketFilter(assignee_id=listing.UNASSIGNED, status="closed"),
    ]
    for spec in common:
        count_scans = _scans(await _plan(database, listing.count_query(spec)))
        assert {relation for _, relation in count_scans} == {"ticket_counts"}, spec
        for cursor in (None, listing.encode_cursor(20_000)):
            statement = listing.list_query(spec, page=1, limit=10, cursor=cursor)
            scans = _scans(await _plan(database, statement))
            assert ("Seq Scan", "tickets") not in scans, (spec, cursor, scans)


async def test_first_pages_settle_on_one_plan_and_searches_keep_a_plan_per_word(
    reporter: Person, other: Person, agent: Person, file_ticket: FileTicket, database: Database
) -> None:
    """A page whose plan fits every value is planned once per connection: PostgreSQL moves to
    the generic plan, which walks an index. Planning each call cost more than running it."""
    await _thirty_thousand_analysed(
        database, file_ticket, reporter=reporter, other=other, agent=agent
    )

    one_plan = [
        listing.TicketFilter(),
        listing.TicketFilter(status="open"),
        listing.TicketFilter(reporter_id=reporter.user.id),
        listing.TicketFilter(reporter_id=reporter.user.id, status="open"),
        listing.TicketFilter(assignee_id=agent.user.id),
        listing.TicketFilter(sort="dueAt"),
        listing.TicketFilter(sort="priority"),
    ]
    async with database.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        for spec in one_plan:
            for cursor in (None, ""):  # page 1, and the first keyset page
                sql, values = _prepared(listing.list_query(spec, page=1, limit=10, cursor=cursor))
                assert "LIMIT $" not in sql, (spec, cursor)
                plans = await _plans_after_eight_runs(driver, sql, values, rows=11)
                assert plans["generic_plans"] >= 1, (spec, cursor, plans)
                generic = await driver.fetchval(
                    "EXPLAIN (GENERIC_PLAN, FORMAT JSON) " + sql, *values
                )
                scans = _scans(json.dumps(generic))  # the connection decodes json
                assert ("Seq Scan", "tickets") not in scans, (spec, cursor, scans)

    # The best plan for a rare word is not the one for a common word, nor for a rare tag: the
    # LIMIT stays a value, and PostgreSQL plans each call for its word.
    for spec in (
        listing.TicketFilter(search="zebra"),
        listing.TicketFilter(q="zebra"),
        listing.TicketFilter(tag="vip"),
        listing.TicketFilter(status="open", assignee_id=agent.user.id),
        listing.TicketFilter(sort="dueAt", status="open"),
    ):
        sql, _ = _prepared(listing.list_query(spec, page=1, limit=10))
        assert "LIMIT $" in sql, spec
    # A page deeper than the first keeps its OFFSET a value: one statement for every page.
    sql, _ = _prepared(listing.list_query(listing.TicketFilter(), page=3, limit=10))
    assert "OFFSET $" in sql


async def _plans_after_eight_runs(
    driver: Any, sql: str, values: list[Any], *, rows: int
) -> dict[str, int]:
    """How PostgreSQL planned `sql` prepared on this connection and run eight times (each
    returning `rows` rows): its generic and custom plans. Asked by the statement's name: the
    connection may hold another copy of the same SQL (the API's, from its statement cache)."""
    prepared = await driver.prepare(sql)
    for _ in range(8):
        assert len(await prepared.fetch(*values)) == rows
    plans = await driver.fetchrow(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = $1",
        prepared.get_name(),
    )
    assert plans is not None
    return dict(plans)


def _prepared(statement: Any) -> tuple[str, list[Any]]:
    """The statement as the driver gets it: `$n` SQL and its values in order."""
    compiled = statement.compile(dialect=asyncpg.dialect())
    return compiled.string, [compiled.params[name] for name in compiled.positiontup]


async def test_search_predicates_are_served_by_their_indexes(
    reporter: Person, file_ticket: FileTicket, database: Database
) -> None:
    """The predicates are indexable (trigram for search=, GIN tsvector for q=). On a small
    table the planner may rightly prefer a scan; the 1M-row plans are in the benchmark."""
    await file_ticket(reporter, "A zebra in the server room")
    for spec, index in (
        (listing.TicketFilter(search="zebra"), "ix_tickets_summary_trgm"),
        (listing.TicketFilter(search="50%_off\\"), "ix_tickets_summary_trgm"),
        (listing.TicketFilter(q="zebra"), "ix_tickets_search_vector"),
    ):
        for statement in (
            listing.list_query(spec, page=1, limit=10),
            listing.count_query(spec),
        ):
            plan = await _plan(database, statement, "SET LOCAL enable_seqscan = off")
            assert index in plan, _explain_text(plan)


async def test_a_search_page_and_its_total_come_from_one_scan(
    reporter: Person, file_ticket: FileTicket, database: Database
) -> None:
    """The capped total and the offset page read the same newest matches: the condition is
    scanned (and planned) once per request, not once for each."""

    def scans_of_the_condition(node: dict[str, Any]) -> int:
        # A bitmap scan counts once: its heap scan names the relation, its index scan does not.
        here = node.get("Relation Name") == "tickets" and any(
            "~~*" in node.get(key, "") or "@@" in node.get(key, "")
            for key in ("Filter", "Index Cond", "Recheck Cond")
        )
        return int(here) + sum(scans_of_the_condition(child) for child in node.get("Plans", []))

    await file_ticket(reporter, "A zebra in the server room")
    for spec, page in (
        (listing.TicketFilter(search="zebra"), 1),
        (listing.TicketFilter(search="zebra"), 4),
        (listing.TicketFilter(q="zebra", sort="-createdAt"), 2),
        (listing.TicketFilter(reporter_id=reporter.user.id, search="zebra"), 1),
    ):
        for setup in ("SET LOCAL enable_seqscan = off", "SET LOCAL enable_bitmapscan = off"):
            plan = await _plan(database, listing.list_query(spec, page=page, limit=10), setup)
            root = json.loads(plan)[0]["Plan"]
            assert scans_of_the_condition(root) == 1, (spec, page, _explain_text(plan))


async def test_a_search_renders_its_page_apart_on_a_plan_kept_per_connection(
    client: httpx.AsyncClient,
    reporter: Person,
    agent: Person,
    file_ticket: FileTicket,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The agents' search finds its page's ids (planned per word) and renders them in a
    statement that is the same for every word and page, so PostgreSQL keeps its plan."""
    sent: list[tuple[str, list[Any]]] = []
    monkeypatch.setattr(raw, "observer", lambda sql, values, _s: sent.append((sql, values)))
    filed = [
        await file_ticket(reporter, f"{word} number {n}")
        for n in range(3)
        for word in ("zebra", "printer")
    ]
    renderings = set()
    for word, page, expected in (("zebra", 1, [4, 2]), ("zebra", 2, [0]), ("printer", 1, [5, 3])):
        sent.clear()
        answer = await client.get(
            f"/api/tickets?search={word}&limit=2&page={page}", headers=agent.auth
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert [t["id"] for t in body["data"]] == [filed[i]["id"] for i in expected]
        assert body["meta"]["pagination"]["total"] == 3
        assert all(t["form"]["id"] == filed[0]["formId"] for t in body["data"])
        searched = [sql for sql, _ in sent if "ILIKE" in sql]
        assert len(searched) == 1 and "ticket_json" not in searched[0], sent
        rendered = [(sql, values) for sql, values in sent if "ticket_json" in sql]
        assert len(rendered) == 1, sent
        assert rendered[0][1] == [[t["id"] for t in body["data"]]]
        renderings.add(rendered[0][0])
    assert len(renderings) == 1  # one statement for every word and page

    # A full page (the default size) of a table in use: PostgreSQL settles on one plan.
    (rendering,) = renderings
    async with database.engine.connect() as conn:
        await _bulk_insert(conn, reporter=reporter, other=reporter, agent=agent, n=100)
        await conn.execute(text("ANALYZE tickets"))
        ids = list(await conn.scalars(text("SELECT id FROM tickets ORDER BY id LIMIT 10")))
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        plans = await _plans_after_eight_runs(driver, rendering, [ids], rows=10)
        assert plans["generic_plans"] >= 1, plans


async def test_search_totals_are_capped(
    client: httpx.AsyncClient,
    reporter: Person,
    form: object,
    database: Database,
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(listing, "SEARCH_PAGES_AHEAD", 1)
    async with database.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO tickets (reporter_id, summary, form_id, form_version, form_response)"
                " SELECT :r, 'copy ' || g, 'it-support', 1, '{}' FROM generate_series(1, 5) g"
            ),
            {"r": reporter.user.id},
        )
    body = (await client.get("/api/tickets/my?search=copy&limit=2", headers=reporter.auth)).json()
    assert body["meta"]["pagination"] == {
        "page": 1,
        "limit": 2,
        "total": 2,
        "totalPages": 1,
        "totalCapped": True,
    }
    # The cap moves with the page: page 2 counts up to its end and one page ahead.
    body = (
        await client.get("/api/tickets/my?search=copy&limit=2&page=2", headers=reporter.auth)
    ).json()
    assert body["meta"]["pagination"]["total"] == 4
    assert body["meta"]["pagination"]["totalCapped"] is True
    assert len(body["data"]) == 2
    last = (
        await client.get("/api/tickets/my?search=copy&limit=2&page=3", headers=reporter.auth)
    ).json()
    assert last["meta"]["pagination"] == {"page": 3, "limit": 2, "total": 5, "totalPages": 3}
    exact = (await client.get("/api/tickets/my?search=copy 5", headers=reporter.auth)).json()
    assert exact["meta"]["pagination"] == {"page": 1, "limit": 10, "total": 1, "totalPages": 1}


def _explain_text(plan: str) -> str:
    lines: list[str] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        lines.append(
            "  " * depth
            + f"{node['Node Type']} {node.get('Relation Name', '')} {node.get('Index Name', '')}"
            + f" rows={node.get('Plan Rows')} cost={node.get('Total Cost')}"
        )
        for child in node.get("Plans", []):
            walk(child, depth + 1)

    walk(json.loads(plan)[0]["Plan"], 0)
    return "\n".join(lines)


async def test_counts_survive_truncate_and_can_be_rebuilt(
    reporter: Person, file_ticket: FileTicket, database: Database
) -> None:
    await file_ticket(reporter)
    await file_ticket(reporter)
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE ticket_counts SET n = n + 40"))  # a broken state
        await conn.execute(text("SELECT tk_ticket_counts_rebuild()"))
    assert await _rows(database, COUNTS_SQL) == await _rows(database, TRUTH_SQL)
    async with database.engine.begin() as conn:
        await conn.execute(text("TRUNCATE tickets CASCADE"))
    assert await _rows(database, COUNTS_SQL) == set()


async def test_counts_follow_bulk_loads_that_skip_ordinary_triggers(
    reporter: Person, agent: Person, file_ticket: FileTicket, database: Database
) -> None:
    """The bulk seed sets session_replication_role = replica to skip foreign-key checks."""
    await file_ticket(reporter)
    async with database.engine.begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await _bulk_insert(conn, reporter=reporter, other=reporter, agent=agent, n=500)
        await conn.execute(text("DELETE FROM tickets WHERE id % 7 = 0"))
    assert await _rows(database, COUNTS_SQL) == await _rows(database, TRUTH_SQL)


async def test_a_bulk_loader_may_skip_the_counts_and_rebuild_them_once(
    reporter: Person, agent: Person, file_ticket: FileTicket, database: Database
) -> None:
    await file_ticket(reporter)
    async with database.engine.begin() as conn:
        await conn.execute(text("SET LOCAL tekudasai.skip_ticket_counts = on"))
        await _bulk_insert(conn, reporter=reporter, other=reporter, agent=agent, n=300)
        stale = await conn.execute(text("SELECT sum(n) FROM ticket_counts WHERE scope = 'all'"))
        assert stale.scalar() == 1
        await conn.execute(text("SELECT tk_ticket_counts_rebuild()"))
    assert await _rows(database, COUNTS_SQL) == await _rows(database, TRUTH_SQL)
