"""The SLA clock against the real database and app: which policy applies, the targets, pauses,
resolving and reopening, first response, re-matching, and warnings and breaches firing once."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tekudasai import tasks
from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tekudasai.jobs.worker import Worker
from tekudasai.live import feed as live_feed
from tekudasai.sla import businesstime
from tekudasai.sla import clock as sla_clock
from tekudasai.sla import jobs as sla_jobs
from tekudasai.sla.businesstime import Calendar, CalendarError, due_at
from tekudasai.tickets import events
from tekudasai.tickets import service as tickets_service
from tekudasai.webhooks import delivery as webhook_delivery
from tekudasai.webhooks import service as webhooks_service
from tests.factories import Person, make_form, person_fixture

admin = person_fixture("admin")
agent = person_fixture("agent")
customer = person_fixture("user")

ALWAYS = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
ELEMENTS = [{"id": "e1", "type": "textarea", "name": "d", "label": "D", "required": True}]


@pytest.fixture(autouse=True)
def _clock_installed() -> None:
    tasks.install_reactors()


@pytest.fixture
async def form(database: Database, admin: Person) -> dict[str, Any]:
    return await make_form(database, admin, elements=ELEMENTS)


async def make_calendar(client: httpx.AsyncClient, admin: Person, **extra: Any) -> str:
    body = {"name": "Always", "timezone": "UTC", "hours": ALWAYS, **extra}
    response = await client.post("/api/calendars", json=body, headers=admin.auth)
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["id"])


async def make_policy(
    client: httpx.AsyncClient, admin: Person, calendar_id: str, **extra: Any
) -> str:
    body = {
        "name": "Policy",
        "position": 1,
        "conditions": {},
        "calendarId": calendar_id,
        "firstResponseMinutes": 30,
        "resolutionMinutes": 600,
        **extra,
    }
    response = await client.post("/api/sla-policies", json=body, headers=admin.auth)
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["id"])


async def file_ticket(client: httpx.AsyncClient, person: Person, form: dict[str, Any]) -> int:
    body = {"formId": form["id"], "summary": "Help", "formResponse": {"d": "It broke"}}
    response = await client.post("/api/tickets/my", json=body, headers=person.auth)
    assert response.status_code == 200, response.text
    return int(response.json()["data"]["id"])


async def sla(database: Database, ticket_id: int) -> Any:
    async with database.sessionmaker() as db:
        row = (
            await db.execute(
                text(
                    "SELECT created_at, status, sla_policy_id, sla_state, sla_started_at,"
                    " sla_paused, sla_first_response_due_at AS fr, sla_resolution_due_at AS res,"
                    " sla_due_at, sla_fired FROM tickets WHERE id = :id"
                ),
                {"id": ticket_id},
            )
        ).one()
    return row


async def patch(client: httpx.AsyncClient, who: Person, ticket_id: int, **body: Any) -> None:
    response = await client.patch(f"/api/tickets/{ticket_id}", json=body, headers=who.auth)
    assert response.status_code == 200, response.text


async def execute(database: Database, sql: str, **params: Any) -> None:
    """Statements separated by `;`, in one transaction, each given the parameters it names."""
    async with database.sessionmaker() as db, db.begin():
        for statement in sql.split(";"):
            names = {k: v for k, v in params.items() if f":{k}" in statement}
            await db.execute(text(statement), names)


async def sla_events(database: Database, ticket_id: int) -> list[tuple[str, dict[str, Any]]]:
    async with database.sessionmaker() as db:
        rows = await db.execute(
            text(
                "SELECT type, data FROM ticket_events WHERE ticket_id = :id"
                " AND type LIKE 'sla.%' ORDER BY id"
            ),
            {"id": ticket_id},
        )
        return [(r.type, r.data) for r in rows]


async def check(database: Database, ticket_id: int) -> list[tuple[str, str]]:
    async with database.sessionmaker() as db, db.begin():
        return await sla_jobs.check(db, ticket_id)


# -- which policy ------------------------------------------------------------------------------


async def test_the_first_matching_policy_by_position_applies(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    customer: Person,
    form: dict[str, Any],
) -> None:
    other = await make_form(database, admin, elements=ELEMENTS, name="Other")
    calendar = await make_calendar(client, admin)
    await make_policy(client, admin, calendar, position=0, conditions={"priority": ["urgent"]})
    await make_policy(client, admin, calendar, position=1, conditions={"formId": [other["id"]]})
    later = await make_policy(client, admin, calendar, position=5, firstResponseMinutes=99)
    chosen = await make_policy(
        client, admin, calendar, position=2, conditions={"formId": [form["id"]]}
    )
    ticket_id = await file_ticket(client, customer, form)

    row = await sla(database, ticket_id)
    assert row.sla_policy_id == chosen != later
    assert row.sla_state == "running" and row.sla_started_at == row.created_at
    assert row.fr == row.created_at + timedelta(minutes=30)
    assert row.res == row.created_at + timedelta(minutes=600)
    assert row.sla_due_at == row.fr and row.sla_fired == [] and row.sla_paused == []
    # The timer for the first moment: the first-response warning at 80 %.
    async with database.sessionmaker() as db:
        run_after = await db.scalar(
            text("SELECT run_after FROM jobs WHERE name = 'sla.check' AND args->>'ticketId' = :id"),
            {"id": str(ticket_id)},
        )
    assert run_after == row.created_at + timedelta(minutes=24)

    # The answer to the creation shows the clock too (from the object the clock kept current).
    listed = await client.get(f"/api/tickets/{ticket_id}", headers=admin.auth)
    assert listed.status_code == 200


async def test_without_a_matching_policy_there_is_no_sla(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    customer: Person,
    form: dict[str, Any],
) -> None:
    ticket_id = await file_ticket(client, customer, form)  # no policy at all
    calendar = await make_calendar(client, admin)
    await make_policy(client, admin, calendar, conditions={"priority": ["urgent", "high"]})
    second = await file_ticket(client, customer, form)  # normal priority: no match
    for tid in (ticket_id, second):
        row = await sla(database, tid)
        assert row.sla_policy_id is None and row.sla_state is None and row.sla_due_at is None
        assert row.fr is None and row.res is None
    async with database.sessionmaker() as db:
        jobs = await db.scalar(text("SELECT count(*) FROM jobs WHERE name = 'sla.check'"))
    assert jobs == 0


async def test_a_policy_changed_after_the_cache_was_loaded_applies_at_once(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    customer: Person,
    form: dict[str, Any],
) -> None:
    calendar = await make_calendar(client, admin)
    policy = await make_policy(client, admin, calendar)
    first = await sla(database, await file_ticket(client, customer, form))  # cache loaded
    assert first.fr == first.created_at + timedelta(minutes=30)

    changed = await client.patch(
        f"/api/sla-policies/{policy}", json={"firstResponseMinutes": 45}, headers=admin.auth
    )
    assert changed.status_code == 200
    second = await sla(database, await file_ticket(client, customer, form))
    assert second.fr == second.created_at + timedelta(minutes=45)

    ahead = await make_policy(client, admin, calendar, position=0, firstResponseMinutes=5)
    third = await sla(database, await file_ticket(client, customer, form))
    assert third.sla_policy_id == ahead

    deleted = await client.delete(f"/api/sla-policies/{ahead}", headers=admin.auth)
    assert deleted.status_code == 200
    await client.delete(f"/api/sla-policies/{policy}", headers=admin.auth)
    fourth = await sla(database, await file_ticket(client, customer, form))
    assert fourth.sla_policy_id is None


async def test_a_policy_another_node_added_applies_to_the_next_ticket(
    client: httpx.AsyncClient,
    database: Database,
    customer: Person,
    form: dict[str, Any],
) -> None:
    """This process's cache says "no policies"; another node adds one (rows written straight
    into the database, no invalidation here). The next ticket's INSERT reads the fingerprint
    (the creation probe), finds it moved, and the clock reads the policies again."""
    first = await sla(database, await file_ticket(client, customer, form))
    assert first.sla_policy_id is None
    async with database.sessionmaker() as db, db.begin():
        await db.execute(
            text(
                "INSERT INTO business_calendars (id, name, timezone, hours, holidays)"
                " VALUES ('elsewhere', 'Elsewhere', 'UTC', CAST(:hours AS jsonb), '[]')"
            ),
            {"hours": json.dumps(ALWAYS)},
        )
        await db.execute(
            text(
                "INSERT INTO sla_policies (id, name, conditions, calendar_id,"
                " first_response_minutes, resolution_minutes)"
                " VALUES ('elsewhere', 'Elsewhere', '{}', 'elsewhere', 20, 90)"
            )
        )
    second = await sla(database, await file_ticket(client, customer, form))
    assert second.sla_policy_id == "elsewhere"
    assert second.fr == second.created_at + timedelta(minutes=20)


async def test_a_policy_another_node_changed_is_not_written_from_a_stale_cache(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    customer: Person,
    form: dict[str, Any],
) -> None:
    """The INSERT writes a clock computed from the cache only while the policies' fingerprint
    holds. Another node changes the target straight in the database: the INSERT leaves the
    clock empty (and queues no timer), and the clock reads the policies again."""
    calendar = await make_calendar(client, admin)
    policy = await make_policy(client, admin, calendar)
    first = await sla(database, await file_ticket(client, customer, form))  # cache loaded
    assert first.fr == first.created_at + timedelta(minutes=30)
    async with database.sessionmaker() as db, db.begin():
        await db.execute(
            text(
                "UPDATE sla_policies SET first_response_minutes = 45, updated_at = now()"
                " WHERE id = :id"
            ),
            {"id": policy},
        )
    ticket_id = await file_ticket(client, customer, form)
    second = await sla(database, ticket_id)
    assert second.sla_policy_id == policy
    assert second.fr == second.created_at + timedelta(minutes=45)
    async with database.sessionmaker() as db:
        timers = await db.scalar(
            text("SELECT count(*) FROM jobs WHERE name = 'sla.check' AND args->>'ticketId' = :id"),
            {"id": str(ticket_id)},
        )
    assert timers == 1  # the slow path's, none from the refused prefill


def test_a_calendar_without_working_hours_gives_no_due_time_at_once() -> None:
    """No weekday has hours: no walk of three years of days to find that out."""
    empty = Calendar.weekly("UTC", {})
    walked = businesstime._working_intervals.cache_info().misses
    with pytest.raises(CalendarError):
        due_at(datetime(2026, 1, 5, tzinfo=UTC), 60, empty)
    assert businesstime._working_intervals.cache_info().misses == walked  # no day looked at


# -- business time -----------------------------------------------------------------------------


def test_targets_skip_the_weekend_and_a_holiday_in_the_calendar_zone() -> None:
    nine_to_five = ((time(9), time(17)),)
    calendar = Calendar.weekly(
        "Pacific/Auckland",
        {day: nine_to_five for day in range(5)},
        holidays=[date(2026, 6, 1)],  # Monday (King's Birthday)
    )
    policy = sla_clock.Policy(
        id="p",
        priority=None,
        form_ids=None,
        team_ids=None,
        calendar=calendar,
        first_response_minutes=120,
        resolution_minutes=600,
    )
    # Friday 29 May 2026, 16:00 in Auckland (NZST, UTC+12) is 04:00 UTC.
    created = datetime(2026, 5, 29, 4, 0, tzinfo=UTC)
    clock = sla_clock.Clock(created, "open", "p", created, [], None, None, [])
    clock.recompute(policy)
    # 60 minutes on Friday, nothing on the weekend or the holiday, 60 on Tuesday from 09:00.
    assert clock.first_response_due_at == datetime(2026, 6, 1, 22, 0, tzinfo=UTC)  # Tue 10:00
    # 600 = 60 Friday + 480 Tuesday + 60 Wednesday: Wednesday 10:00 NZST.
    assert clock.resolution_due_at == datetime(2026, 6, 2, 22, 0, tzinfo=UTC)


async def test_a_new_policy_counts_from_the_original_start_in_its_calendar(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    agent: Person,
    customer: Person,
    form: dict[str, Any],
) -> None:
    calendar = await make_calendar(
        client,
        admin,
        name="Auckland office",
        timezone="Pacific/Auckland",
        hours={day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
        holidays=["2026-06-01"],
    )
    await make_policy(
        client, admin, calendar, conditions={"priority": ["urgent"]}, firstResponseMinutes=120
    )
    ticket_id = await file_ticket(client, customer, form)
    assert (await sla(database, ticket_id)).sla_policy_id is None
    await execute(
        database,
        "UPDATE tickets SET created_at = '2026-05-29T04:00:00Z' WHERE id = :id",
        id=ticket_id,
    )
    await patch(client, agent, ticket_id, priority="urgent")
    row = await sla(database, ticket_id)
    assert row.sla_started_at == datetime(2026, 5, 29, 4, 0, tzinfo=UTC)
    assert row.fr == datetime(2026, 6, 1, 22, 0, tzinfo=UTC)


# -- pending, resolving, reopening -------------------------------------------------------------


async def test_pending_pauses_and_resuming_extends_by_the_paused_time(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    agent: Person,
    customer: Person,
    form: dict[str, Any],
) -> None:
    calendar = await make_calendar(client, admin)
    await make_policy(client, admin, calendar)
    ticket_id = await file_ticket(client, customer, form)
    before = await sla(database, ticket_id)

    await patch(client, agent, ticket_id, status="pending")
    paused = await sla(database, ticket_id)
    assert paused.sla_state == "paused" and paused.sla_due_at is None
    assert len(paused.sla_paused) == 1 and paused.sla_paused[0][1] is None
    # Ten minutes of waiting on the customer (filed twenty minutes ago), without waiting.
    since = datetime.fromisoformat(paused.sla_paused[0][0]) - timedelta(minutes=10)
    await execute(
        database,
        "UPDATE tickets SET sla_paused = jsonb_build_array(jsonb_build_array("
        "CAST(:since AS text), null)), created_at = created_at - interval '20 minutes',"
        " sla_started_at = sla_started_at - interval '20 minutes' WHERE id = :id",
        since=since.isoformat(),
        id=ticket_id,
    )
    shifted = timedelta(minutes=20)

    await patch(client, agent, ticket_id, status="open")
    resumed = await sla(database, ticket_id)
    start, end = (datetime.fromisoformat(v) for v in resumed.sla_paused[0])
    assert start == since and end - start >= timedelta(minutes=10)
    assert resumed.sla_state == "running"
    assert resumed.fr == before.fr - shifted + (end - start)
    assert resumed.res == before.res - shifted + (end - start)
    assert resumed.sla_due_at == resumed.fr


async def test_resolving_meets_and_reopening_restarts_the_resolution_clock(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    agent: Person,
    customer: Person,
    form: dict[str, Any],
) -> None:
    calendar = await make_calendar(client, admin)
    await make_policy(client, admin, calendar)
    ticket_id = await file_ticket(client, customer, form)
    await client.post(
        f"/api/tickets/{ticket_id}/comments", json={"body": "On it"}, headers=agent.auth
    )
    await execute(
        database,
        "UPDATE tickets SET sla_fired = sla_fired || '{resolution.warning}' WHERE id = :id",
        id=ticket_id,
    )
    await patch(client, agent, ticket_id, status="resolved")
    resolved = await sla(database, ticket_id)
    assert resolved.sla_state == "met" and resolved.sla_due_at is None

    # The customer answers: reopened, the resolution clock starts again.
    url = f"/api/tickets/my/{ticket_id}/comments"
    reply = await client.post(url, json={"body": "Still broken"}, headers=customer.auth)
    assert reply.status_code == 200
    reopened = await sla(database, ticket_id)
    assert reopened.status == "open" and reopened.sla_state == "running"
    assert reopened.sla_started_at > resolved.sla_started_at
    assert reopened.res == reopened.sla_started_at + timedelta(minutes=600)
    assert reopened.sla_due_at == reopened.res and reopened.sla_paused == []
    assert "resolution.warning" not in reopened.sla_fired
    assert "firstResponse.answered" in reopened.sla_fired


async def test_a_breached_ticket_stays_breached_when_resolved(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    agent: Person,
    customer: Person,
    form: dict[str, Any],
) -> None:
    calendar = await make_calendar(client, admin)
    await make_policy(client, admin, calendar)
    ticket_id = await file_ticket(client, customer, form)
    await execute(
        database,
        "UPDATE tickets SET sla_first_response_due_at = now() - interval '1 minute' WHERE id = :id",
        id=ticket_id,
    )
    assert await check(database, ticket_id) == [
        ("firstResponse", "warning"),
        ("firstResponse", "breached"),
    ]
    await patch(client, agent, ticket_id, status="resolved")
    row = await sla(database, ticket_id)
    assert row.sla_state == "breached" and row.sla_due_at is None


# -- first response ----------------------------------------------------------------------------


async def test_only_a_public_agent_reply_meets_the_first_response(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    agent: Person,
    customer: Person,
    form: dict[str, Any],
) -> None:
    calendar = await make_calendar(client, admin)
    await make_policy(client, admin, calendar)
    ticket_id = await file_ticket(client, customer, form)
    url = f"/api/tickets/{ticket_id}/comments"

    await client.post(
        f"/api/tickets/my/{ticket_id}/comments", json={"body": "Any news?"}, headers=customer.auth
    )
    note = await client.post(url, json={"body": "Looking", "internal": True}, headers=agent.auth)
    assert note.status_code == 200
    row = await sla(database, ticket_id)
    assert "firstResponse.answered" not in row.sla_fired and row.sla_due_at == row.fr

    reply = await client.post(url, json={"body": "Fixed soon"}, headers=agent.auth)
    assert reply.status_code == 200
    row = await sla(database, ticket_id)
    assert row.sla_fired == ["firstResponse.answered"]
    assert row.sla_state == "running" and row.sla_due_at == row.res
    # A first-response warning job still queued finds nothing to do.
    await execute(
        database,
        "UPDATE tickets SET created_at = now() - interval '29 minutes' WHERE id = :id",
        id=ticket_id,
    )
    assert await check(database, ticket_id) == []


# -- re-matching -------------------------------------------------------------------------------


async def test_a_priority_change_matches_the_policy_again(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    agent: Person,
    customer: Person,
    form: dict[str, Any],
) -> None:
    calendar = await make_calendar(client, admin)
    urgent = await make_policy(
        client, admin, calendar, position=0, conditions={"priority": ["urgent"]},
        firstResponseMinutes=10, resolutionMinutes=60,
    )  # fmt: skip
    general = await make_policy(client, admin, calendar, position=1)
    ticket_id = await file_ticket(client, customer, form)
    assert (await sla(database, ticket_id)).sla_policy_id == general

    await patch(client, agent, ticket_id, priority="urgent")
    row = await sla(database, ticket_id)
    assert row.sla_policy_id == urgent
    assert row.fr == row.created_at + timedelta(minutes=10)
    assert row.res == row.created_at + timedelta(minutes=60)
    assert row.sla_due_at == row.fr

    await patch(client, agent, ticket_id, priority="normal")
    assert (await sla(database, ticket_id)).sla_policy_id == general


# -- warnings and breaches ---------------------------------------------------------------------


async def test_warning_and_breach_fire_once_each_from_the_queue(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    admin: Person,
    customer: Person,
    form: dict[str, Any],
) -> None:
    calendar = await make_calendar(client, admin)
    await make_policy(client, admin, calendar)
    ticket_id = await file_ticket(client, customer, form)
    worker = Worker(database, settings, tasks.TASKS)

    # 25 of 30 minutes used: past the warning, not the breach. The queued timer is due now.
    await execute(
        database,
        "UPDATE tickets SET created_at = now() - interval '25 minutes',"
        " sla_first_response_due_at = now() + interval '5 minutes' WHERE id = :id;"
        " UPDATE jobs SET run_after = now() WHERE name = 'sla.check'",
        id=ticket_id,
    )
    await worker.run_pending()
    row = await sla(database, ticket_id)
    assert row.sla_state == "warning" and row.sla_fired == ["firstResponse.warning"]
    assert await check(database, ticket_id) == []  # again: nothing

    # The next timer waits for the breach.
    async with database.sessionmaker() as db:
        queued = await db.scalar(
            text("SELECT max(run_after) FROM jobs WHERE name = 'sla.check' AND status = 'queued'")
        )
    assert queued == row.fr

    await execute(
        database,
        "UPDATE tickets SET sla_first_response_due_at = now() - interval '1 second'"
        " WHERE id = :id; UPDATE jobs SET run_after = now() WHERE status = 'queued'",
        id=ticket_id,
    )
    await worker.run_pending()
    await worker.run_pending()
    assert await check(database, ticket_id) == []
    row = await sla(database, ticket_id)
    assert row.sla_state == "breached"
    assert row.sla_fired == ["firstResponse.warning", "firstResponse.breached"]
    fired = await sla_events(database, ticket_id)
    assert [(t, d["target"]) for t, d in fired] == [
        ("sla.warning", "firstResponse"),
        ("sla.breached", "firstResponse"),
    ]
    assert fired[1][1]["dueAt"] == row.fr.isoformat()


async def test_racing_checks_fire_once(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    customer: Person,
    form: dict[str, Any],
) -> None:
    calendar = await make_calendar(client, admin)
    await make_policy(client, admin, calendar)
    ticket_ids = [await file_ticket(client, customer, form) for _ in range(3)]
    await execute(
        database,
        "UPDATE tickets SET sla_first_response_due_at = now() - interval '1 second'"
        " WHERE id = ANY(:ids)",
        ids=ticket_ids,
    )
    for ticket_id in ticket_ids:
        results = await asyncio.gather(*(check(database, ticket_id) for _ in range(4)))
        assert sorted(map(len, results)) == [0, 0, 0, 2]
        assert len(await sla_events(database, ticket_id)) == 2


async def test_two_workers_racing_fire_once(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    admin: Person,
    customer: Person,
    form: dict[str, Any],
) -> None:
    calendar = await make_calendar(client, admin)
    await make_policy(client, admin, calendar)
    ticket_id = await file_ticket(client, customer, form)
    # Extra timers for the same moment, as after several changes of the targets.
    async with database.sessionmaker() as db, db.begin():
        for _ in range(5):
            await db.execute(
                text(
                    "INSERT INTO jobs (name, args) VALUES "
                    "('sla.check', jsonb_build_object('ticketId', CAST(:id AS int)))"
                ),
                {"id": ticket_id},
            )
    await execute(
        database,
        "UPDATE tickets SET sla_first_response_due_at = now() - interval '1 second' WHERE id = :id",
        id=ticket_id,
    )
    workers = [Worker(database, settings, tasks.TASKS, me=f"w{n}") for n in range(2)]
    await asyncio.gather(*(w.run_pending() for w in workers))
    assert [t for t, _ in await sla_events(database, ticket_id)] == ["sla.warning", "sla.breached"]


async def test_the_sweep_fires_a_breach_whose_timer_was_lost(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    admin: Person,
    customer: Person,
    form: dict[str, Any],
) -> None:
    calendar = await make_calendar(client, admin)
    await make_policy(client, admin, calendar)
    ticket_id = await file_ticket(client, customer, form)
    await execute(
        database,
        "DELETE FROM jobs WHERE name = 'sla.check';"
        " UPDATE tickets SET sla_first_response_due_at = now() - interval '1 second',"
        " sla_due_at = now() - interval '1 second' WHERE id = :id",
        id=ticket_id,
    )
    worker = Worker(database, settings, tasks.TASKS)
    await sla_jobs.sweep_task(await _ctx(worker))
    await sla_jobs.sweep_task(await _ctx(worker))
    assert [t for t, _ in await sla_events(database, ticket_id)] == ["sla.warning", "sla.breached"]


async def test_the_sweep_fires_a_warning_whose_timer_failed_for_good(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    admin: Person,
    customer: Person,
    form: dict[str, Any],
) -> None:
    calendar = await make_calendar(client, admin)
    await make_policy(client, admin, calendar)
    ticket_id = await file_ticket(client, customer, form)
    # Past the warning, not overdue: only the failed job points at it.
    await execute(
        database,
        "UPDATE tickets SET created_at = now() - interval '25 minutes',"
        " sla_first_response_due_at = now() + interval '5 minutes' WHERE id = :id;"
        " UPDATE jobs SET status = 'failed', finished_at = now() WHERE name = 'sla.check'",
        id=ticket_id,
    )
    worker = Worker(database, settings, tasks.TASKS)
    await sla_jobs.sweep_task(await _ctx(worker))
    assert [t for t, _ in await sla_events(database, ticket_id)] == ["sla.warning"]
    assert (await sla(database, ticket_id)).sla_state == "warning"


async def _ctx(worker: Worker) -> Any:
    from tekudasai.jobs.worker import JobContext

    return JobContext(worker.database, worker.settings, 0, 1)


async def test_a_webhook_for_sla_breached_gets_exactly_one_delivery(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    cipher: PiiCipher,
    admin: Person,
    customer: Person,
    form: dict[str, Any],
) -> None:
    async with database.sessionmaker() as db, db.begin():
        await webhooks_service.create_webhook(
            db,
            cipher,
            url="http://127.0.0.1:9/hook",
            events=["sla.breached"],
            created_by=admin.user.id,
            allow_private=True,
        )
    calendar = await make_calendar(client, admin)
    await make_policy(client, admin, calendar)
    ticket_id = await file_ticket(client, customer, form)
    await execute(
        database,
        "UPDATE tickets SET sla_first_response_due_at = now() - interval '1 second' WHERE id = :id",
        id=ticket_id,
    )
    await asyncio.gather(check(database, ticket_id), check(database, ticket_id))
    # Dispatch every event (notifications, webhooks); deliveries are not sent here.
    worker = Worker(database, settings, tasks.TASKS, skip=frozenset({webhook_delivery.DELIVER}))
    await worker.run_pending()
    async with database.sessionmaker() as db:
        rows = (
            await db.execute(
                text("SELECT event_type, ticket_id, body FROM webhook_deliveries ORDER BY id")
            )
        ).all()
        undispatched = await db.scalar(
            text("SELECT count(*) FROM ticket_events WHERE dispatched_at IS NULL")
        )
    assert undispatched == 0  # the notification and live handlers coped too
    assert [(r.event_type, r.ticket_id) for r in rows] == [("sla.breached", ticket_id)]
    # The live feed leaves them out (agent-facing state, never sent to the customer's stream).
    async with database.sessionmaker() as db:
        sla_ids = list(
            await db.scalars(text("SELECT id FROM ticket_events WHERE type LIKE 'sla.%'"))
        )
        assert len(sla_ids) == 2
        assert await live_feed.load(db, cipher, sla_ids) == []
        assert all(e.id not in sla_ids for e in await live_feed.since(db, cipher, 0))
    assert "firstResponse" in str(rows[0].body)


@pytest.mark.parametrize("hours_after", [0, 7, 30, 55, 100, 170, 1000])
def test_one_walk_gives_the_due_times_of_due_at(hours_after: int) -> None:
    calendar = Calendar.weekly(
        "Europe/Berlin",
        {day: ((time(9), time(12, 30)), (time(13), time(17))) for day in range(4)},
        holidays=[date(2026, 10, 26)],
        country="DE",
    )
    # From 25 Oct 2026 (the night the clocks go back), with a paused afternoon.
    start = datetime(2026, 10, 24, 23, 0, tzinfo=UTC) + timedelta(hours=hours_after)
    paused = [(start + timedelta(hours=20), start + timedelta(hours=26))]
    for minutes in (1, 45, 240, 2400):
        marks = (minutes * 0.8, minutes)
        reached = sla_clock._reach(start, marks, calendar, paused)
        assert reached == tuple(due_at(start, m, calendar, paused) for m in marks)


async def test_creation_returns_the_ticket_as_the_reactors_left_it(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    customer: Person,
    form: dict[str, Any],
) -> None:
    """The clock keeps the new ticket's object current (it is not read again), also with a
    reactor that changes the ticket through the service (as automations do), in either order."""
    calendar = await make_calendar(client, admin)
    urgent = await make_policy(
        client, admin, calendar, position=0, conditions={"priority": ["urgent"]},
        firstResponseMinutes=10,
    )  # fmt: skip
    general = await make_policy(client, admin, calendar, position=1)

    async def escalate(db: Any, change: events.Change) -> None:
        if change.type is events.EventType.TICKET_CREATED:
            await tickets_service.update_ticket(
                db, ticket_id=change.ticket_id, actor_id=None, priority="urgent"
            )

    async def create() -> Any:
        async with database.sessionmaker() as db, db.begin():
            return await tickets_service.create_ticket(
                db,
                reporter_id=customer.user.id,
                form_id=form["id"],
                summary="Help",
                form_response={"d": "It broke"},
            )

    plain = await create()
    assert plain.sla_policy_id == general and plain.sla_state == "running"
    assert plain.sla_first_response_due_at == plain.created_at + timedelta(minutes=30)
    assert plain.sla_due_at == plain.sla_first_response_due_at

    events.install_reactors([sla_clock.react, escalate])
    try:
        escalated = await create()
    finally:
        tasks.install_reactors()
    # In either order.
    events.install_reactors([escalate, sla_clock.react])
    try:
        first_escalated = await create()
    finally:
        tasks.install_reactors()
    for ticket in (escalated, first_escalated):
        row = await sla(database, ticket.id)
        assert ticket.priority == "urgent" and row.sla_policy_id == urgent
        assert ticket.sla_policy_id == urgent
        assert ticket.sla_first_response_due_at == row.fr == row.created_at + timedelta(minutes=10)
