"""GET /api/reports/summary against tickets inserted with known timestamps: every figure is
worked out by hand here, from the definitions in reports/service.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from tekudasai.accounts import tokens
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tekudasai.teams import service as teams
from tests.factories import Person, make_form, person_fixture

admin = person_fixture("admin")
agent = person_fixture("agent")
other_agent = person_fixture("agent")
customer = person_fixture("user")

URL = "/api/reports/summary"
ELEMENTS = [{"id": "e1", "type": "textarea", "name": "what", "label": "What?"}]
DAY = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday; the tests ask about 2026-03-01 … 03-07


async def insert_tickets(database: Database, form_id: str, reporter: str, rows: list[dict]) -> None:
    """Tickets straight into the table: the figures depend only on these columns (the
    rollup's triggers see raw INSERTs as they see the ticket service's)."""
    async with database.sessionmaker() as db, db.begin():
        for row in rows:
            await db.execute(
                text(
                    "INSERT INTO tickets (reporter_id, summary, form_id, form_version,"
                    " form_response, status, created_at, updated_at, first_responded_at,"
                    " resolved_at, assignee_id, team_id, sla_state)"
                    " VALUES (:reporter, 'Report test', :form, 1, '{}', :status, :created,"
                    " :created, :first, :resolved, :assignee, :team, :sla)"
                ),
                {
                    "reporter": reporter,
                    "form": form_id,
                    "status": row.get("status", "open"),
                    "created": row["created"],
                    "first": row.get("first"),
                    "resolved": row.get("resolved"),
                    "assignee": row.get("assignee"),
                    "team": row.get("team"),
                    "sla": row.get("sla"),
                },
            )


def assert_near(got: dict[str, float | None], exact: dict[str, float]) -> None:
    """Percentiles come from histograms with buckets 5 % wide (reports/rollup.py): the
    documented bound is 5 % of the exact `percentile_cont` value (+0.01 for the rounding to two
    decimals); these values are all over a minute, so the extra minute of bucket 0 never
    applies."""
    assert set(got) == set(exact), got
    for key, value in exact.items():
        approx = got[key]
        assert approx is not None, (key, got)
        assert abs(approx - value) <= 0.05 * value + 0.01, (key, approx, value)


def at(day: int, hour: int = 10, minute: int = 0) -> datetime:
    return DAY + timedelta(days=day - 2, hours=hour, minutes=minute)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


async def seed(
    database: Database,
    cipher: PiiCipher,
    admin: Person,
    agent: Person,
    other: Person,
    customer: Person,
) -> str:
    form = await make_form(database, admin, elements=ELEMENTS)
    async with database.sessionmaker() as db, db.begin():
        team = await teams.create_team(
            db, name="Hardware", member_ids=[agent.user.id], assignment="manual"
        )
        team_id = str(team["id"])
    a, o = agent.user.id, other.user.id
    rows: list[dict[str, Any]] = [
        # Created on 03-02: first responses after 10, 20, 30 and 40 minutes.
        {"created": at(2), "first": at(2) + minutes(10), "assignee": a, "team": team_id,
         "sla": "met", "status": "resolved", "resolved": at(2) + minutes(60)},
        {"created": at(2, 11), "first": at(2, 11) + minutes(20), "assignee": a, "team": team_id,
         "sla": "breached", "status": "resolved", "resolved": at(4, 11)},
        {"created": at(2, 12), "first": at(2, 12) + minutes(30), "assignee": o, "sla": "met",
         "status": "in_progress"},
        {"created": at(2, 13), "first": at(2, 13) + minutes(40), "assignee": o,
         "status": "pending", "sla": "running"},
        # Created on 03-05: no response yet, no SLA, unassigned.
        {"created": at(5), "status": "open"},
        # Created before the period, resolved inside it (counts in resolved, not created).
        {"created": at(-3), "first": at(-3) + minutes(5), "assignee": o, "status": "closed",
         "resolved": at(6), "sla": "met"},
        # Created after the period: in no figure but the backlog.
        {"created": at(9), "status": "open", "team": team_id},
    ]  # fmt: skip
    await insert_tickets(database, form["id"], customer.user.id, rows)
    return team_id


async def test_figures_of_a_week(
    client: httpx.AsyncClient,
    database: Database,
    cipher: PiiCipher,
    admin: Person,
    agent: Person,
    other_agent: Person,
    customer: Person,
) -> None:
    team_id = await seed(database, cipher, admin, agent, other_agent, customer)
    week = {"from": "2026-03-01", "to": "2026-03-07"}
    got = await client.get(URL, params=week, headers=agent.auth)
    assert got.status_code == 200, got.text
    data = got.json()["data"]
    assert (data["from"], data["to"], data["teamId"]) == ("2026-03-01", "2026-03-07", None)
    assert data["created"] == 5
    # Resolved in the period: 60 min (03-02), 2 days (03-04), and the old one on 03-06.
    assert data["resolved"] == 3
    # Now open, in progress or pending: 03-02 12:00 and 13:00, 03-05, 03-11.
    assert data["backlog"] == 4
    # 10, 20, 30, 40: p50 = 25, p90 = 30 + 0.7 * 10 = 37.
    assert_near(data["firstResponseMinutes"], {"p50": 25.0, "p90": 37.0})
    # 60, 2880, and 9 days + 0 h = 12960: p50 = 2880, p90 = 2880 + 0.8 * 10080 = 10944.
    assert_near(data["resolutionMinutes"], {"p50": 2880.0, "p90": 10944.0})
    # Finished clocks of tickets created in the period: met, breached, met -> 2/3.
    assert data["slaMet"] == round(2 / 3, 4) and data["slaFinished"] == 3
    assert [d["date"] for d in data["byDay"]] == [f"2026-03-0{n}" for n in range(1, 8)]
    assert [(d["created"], d["resolved"]) for d in data["byDay"]] == [
        (0, 0), (4, 1), (0, 0), (0, 1), (1, 0), (0, 1), (0, 0)
    ]  # fmt: skip
    by_agent = {a["userId"]: a for a in data["byAgent"]}
    assert set(by_agent) == {agent.user.id, other_agent.user.id}
    mine = by_agent[agent.user.id]
    assert (mine["name"], mine["assigned"], mine["resolved"]) == (agent.name, 2, 2)
    assert_near(mine["firstResponseMinutes"], {"p50": 15.0, "p90": 19.0})
    theirs = by_agent[other_agent.user.id]
    assert (theirs["assigned"], theirs["resolved"]) == (2, 1)
    assert_near(theirs["firstResponseMinutes"], {"p50": 35.0, "p90": 39.0})

    # The team's tickets only.
    narrowed = await client.get(URL, params=week | {"teamId": team_id}, headers=agent.auth)
    team = narrowed.json()["data"]
    assert (team["created"], team["resolved"], team["backlog"]) == (2, 2, 1)
    assert_near(team["firstResponseMinutes"], {"p50": 15.0, "p90": 19.0})
    assert team["slaMet"] == 0.5
    assert [a["userId"] for a in team["byAgent"]] == [agent.user.id]

    # A period without tickets: zeros and nulls, every day still listed.
    empty = (
        await client.get(URL, params={"from": "2025-01-01", "to": "2025-01-03"}, headers=admin.auth)
    ).json()["data"]
    assert (empty["created"], empty["resolved"], empty["slaMet"]) == (0, 0, None)
    assert empty["firstResponseMinutes"] == {"p50": None, "p90": None}
    assert [d["created"] for d in empty["byDay"]] == [0, 0, 0] and empty["byAgent"] == []


async def test_default_period_is_the_last_30_days(client: httpx.AsyncClient, agent: Person) -> None:
    data = (await client.get(URL, headers=agent.auth)).json()["data"]
    today = datetime.now(UTC).date()
    assert data["to"] == today.isoformat()
    assert data["from"] == (today - timedelta(days=29)).isoformat()
    assert len(data["byDay"]) == 30


async def test_bad_periods_are_refused_with_the_field(
    client: httpx.AsyncClient, agent: Person
) -> None:
    cases = [
        ({"from": "2026-03-08", "to": "2026-03-01"}, "from"),
        ({"from": "2026-02-30"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"to": "2026-W01-1"}, "to"),  # an ISO week date: not YYYY-MM-DD
        ({"from": "2024-01-01", "to": "2025-01-01"}, "to"),  # 367 days
        ({"teamId": "no-such-team"}, "teamId"),
    ]
    for params, field in cases:
        got = await client.get(URL, params=params, headers=agent.auth)
        assert got.status_code == 400, (params, got.text)
        assert got.json()["errors"][0]["field"] == field, (params, got.text)
    longest = await client.get(
        URL, params={"from": "2024-01-01", "to": "2024-12-31"}, headers=agent.auth
    )  # 366 days (a leap year): allowed
    assert longest.status_code == 200 and len(longest.json()["data"]["byDay"]) == 366


async def test_only_agents_and_the_reports_scope(
    client: httpx.AsyncClient, database: Database, agent: Person, customer: Person
) -> None:
    assert (await client.get(URL)).status_code == 401
    assert (await client.get(URL, headers=customer.auth)).status_code == 404
    async with database.sessionmaker() as db, db.begin():
        _, reading = await tokens.create_token(
            db, user_id=agent.user.id, name="r", scopes=["reports:read"], expires_in_days=None
        )
        _, tickets_only = await tokens.create_token(
            db, user_id=agent.user.id, name="t", scopes=["tickets:read"], expires_in_days=None
        )
        _, customers = await tokens.create_token(
            db, user_id=customer.user.id, name="c", scopes=["reports:read"], expires_in_days=None
        )
    ok = await client.get(URL, headers={"Authorization": f"Bearer {reading}"})
    assert ok.status_code == 200
    refused = await client.get(URL, headers={"Authorization": f"Bearer {tickets_only}"})
    assert refused.status_code == 403 and refused.json()["code"] == "INSUFFICIENT_SCOPE"
    hidden = await client.get(URL, headers={"Authorization": f"Bearer {customers}"})
    assert hidden.status_code == 404
