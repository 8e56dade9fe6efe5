"""The reports rollup (migration 0021, reports/rollup.py): the triggers keep it exact through
every kind of ticket change, the fold moves deltas without changing any figure (also with two
folds at once), and the histogram percentiles stay within the documented bound.

`expected` recomputes every rollup row in Python from the ticket columns, independently of the
SQL in the migration; `stored` reads what the database holds (rollup plus unfolded deltas) per
level, as the report does."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tekudasai.reports import rollup
from tekudasai.teams import service as teams
from tests.factories import Person, make_form, person_fixture
from tests.reports.test_summary_api import ELEMENTS, insert_tickets

admin = person_fixture("admin")
agent = person_fixture("agent")
other_agent = person_fixture("agent")
customer = person_fixture("user")

Key = tuple[date, int, str, str, int]
Figures = dict[Key, tuple[int, int, int]]
# The views the rollup keeps, as (all teams?, all assignees?): every level for the first two,
# per day (level 0) and counts only (kinds 1, 3) for the all-assignee ones.
VIEWS = ((False, False), (True, False), (False, True), (True, True))
State = dict[tuple[bool, bool], dict[int, Figures]]

_TICKETS = """
SELECT created_at, first_responded_at, resolved_at, team_id, assignee_id, sla_state FROM tickets
"""

_STORED = """
SELECT level, start, kind, team_id, assignee_id, bucket, n, met, finished FROM report_rollup
UNION ALL
SELECT -1, day, kind, team_id, assignee_id, bucket, n, met, finished FROM report_deltas
"""


def _minutes(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / 60


def _nonzero(counter: dict[Key, list[int]]) -> Figures:
    return {k: (n, m, f) for k, (n, m, f) in counter.items() if (n, m, f) != (0, 0, 0)}


def _levels(all_assignees: bool) -> range:
    return range(1) if all_assignees else range(rollup.TOP_LEVEL + 1)


def _views(day_rows: list[tuple[Key, tuple[int, int, int]]]) -> State:
    """Every view of these per-day figures, summed as the fold sums them."""
    state: State = {}
    for all_teams, all_assignees in VIEWS:
        for level in _levels(all_assignees):
            sums: dict[Key, list[int]] = {}
            for (day, kind, team, assignee, bucket), (n, met, finished) in day_rows:
                if all_assignees and kind not in (1, 3):
                    continue
                key = (
                    rollup.block_start(day, level),
                    kind,
                    "*" if all_teams else team,
                    "*" if all_assignees else assignee,
                    bucket,
                )
                row = sums.setdefault(key, [0, 0, 0])
                row[0] += n
                row[1] += met
                row[2] += finished
            state.setdefault((all_teams, all_assignees), {})[level] = _nonzero(sums)
    return state


async def expected(database: Database) -> State:
    """Recomputed in Python from the ticket columns."""
    async with database.engine.connect() as conn:
        tickets = (await conn.execute(text(_TICKETS))).all()
    rows: list[tuple[Key, tuple[int, int, int]]] = []
    for created, first, resolved, team, assignee, sla in tickets:
        team, assignee = team or "", assignee or ""
        day = created.astimezone(UTC).date()
        met, finished = int(sla == "met"), int(sla in ("met", "breached"))
        rows.append(((day, 1, team, assignee, -1), (1, met, finished)))
        if first is not None:
            bucket = rollup.bucket_of(_minutes(first, created))
            rows.append(((day, 2, team, assignee, bucket), (1, 0, 0)))
        if resolved is not None:
            rday = resolved.astimezone(UTC).date()
            rows.append(((rday, 3, team, assignee, -1), (1, 0, 0)))
            bucket = rollup.bucket_of(_minutes(resolved, created))
            rows.append(((rday, 4, team, "", bucket), (1, 0, 0)))
    return _views(rows)


async def stored(database: Database) -> State:
    """What the database holds: the rollup's rows of each view plus the deltas not folded."""
    async with database.engine.connect() as conn:
        rows = (await conn.execute(text(_STORED))).all()
    folded: State = {view: {level: {} for level in _levels(view[1])} for view in VIEWS}
    pending: list[tuple[Key, tuple[int, int, int]]] = []
    for level, start, kind, team, assignee, bucket, n, met, finished in rows:
        if level == -1:
            pending.append(((start, kind, team, assignee, bucket), (n, met, finished)))
            continue
        view = (team == "*", assignee == "*")
        assert level in _levels(view[1]), (level, view)
        assert rollup.block_start(start, level) == start
        key = (start, kind, team, assignee, bucket)
        assert key not in folded[view][level]
        folded[view][level][key] = (n, met, finished)
    unfolded = _views(pending)
    state: State = {}
    for view in VIEWS:
        for level in _levels(view[1]):
            sums = {k: list(v) for k, v in folded[view][level].items()}
            for key, value in unfolded[view][level].items():
                row = sums.setdefault(key, [0, 0, 0])
                for i in range(3):
                    row[i] += value[i]
            state.setdefault(view, {})[level] = _nonzero(sums)
    return state


async def assert_exact(database: Database) -> None:
    want, got = await expected(database), await stored(database)
    for view in VIEWS:
        for level in _levels(view[1]):
            assert got[view][level] == want[view][level], (view, level)


async def fold_all(database: Database) -> int:
    moved = 0
    while True:
        async with database.sessionmaker() as db, db.begin():
            batch = await rollup.fold_once(db, batch=7)  # small batches: several rounds
        moved += batch
        if batch == 0:
            return moved


async def deltas(database: Database) -> int:
    async with database.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM report_deltas"))).scalar_one())


async def execute(database: Database, sql: str, **params: Any) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(text(sql), params)


def at(days: float, minutes: float = 0) -> datetime:
    return datetime(2026, 3, 2, 9, tzinfo=UTC) + timedelta(days=days, minutes=minutes)


async def test_every_change_to_a_figure_column_keeps_the_rollup_exact(
    database: Database, admin: Person, agent: Person, other_agent: Person, customer: Person
) -> None:
    form = await make_form(database, admin, elements=ELEMENTS)
    async with database.sessionmaker() as db, db.begin():
        team_a = str(
            (await teams.create_team(db, name="A", member_ids=[], assignment="manual"))["id"]
        )
        team_b = str(
            (await teams.create_team(db, name="B", member_ids=[], assignment="manual"))["id"]
        )
    a, o = agent.user.id, other_agent.user.id
    await insert_tickets(
        database,
        form["id"],
        customer.user.id,
        [
            {"created": at(0), "first": at(0, 12.5), "assignee": a, "team": team_a, "sla": "met"},
            {"created": at(0, 30), "assignee": o, "team": team_b, "sla": "running"},
            {"created": at(1), "first": at(1, 0.3), "resolved": at(3, 7), "status": "resolved"},
            {"created": at(-40), "assignee": a, "sla": "breached", "resolved": at(2),
             "status": "closed", "first": at(-39)},
        ],
    )  # fmt: skip
    await assert_exact(database)
    async with database.engine.connect() as conn:
        made = [row[0] for row in await conn.execute(text("SELECT id FROM tickets ORDER BY id"))]
    ids = dict(zip(("first", "second", "third", "old"), made, strict=True))
    changes = [
        # Reassign an old ticket (its created day is months back).
        ("UPDATE tickets SET assignee_id = :o WHERE id = :id", {"id": ids["old"], "o": o}),
        ("UPDATE tickets SET assignee_id = NULL WHERE id = :id", {"id": ids["first"]}),
        ("UPDATE tickets SET team_id = :t WHERE id = :id", {"id": ids["second"], "t": team_a}),
        # Resolve, then reopen (resolved_at cleared).
        ("UPDATE tickets SET status = 'resolved', resolved_at = :r WHERE id = :id",
         {"id": ids["second"], "r": at(5, 3)}),
        ("UPDATE tickets SET status = 'open', resolved_at = NULL WHERE id = :id",
         {"id": ids["third"]}),
        # A late first response on a ticket of an earlier day.
        ("UPDATE tickets SET first_responded_at = :f WHERE id = :id",
         {"id": ids["second"], "f": at(9, 1)}),
        ("UPDATE tickets SET sla_state = 'breached' WHERE id = :id", {"id": ids["first"]}),
        ("UPDATE tickets SET sla_state = 'met' WHERE id = :id", {"id": ids["second"]}),
        ("UPDATE tickets SET created_at = :c WHERE id = :id", {"id": ids["third"], "c": at(-2)}),
        # Columns the report does not read append nothing.
        ("UPDATE tickets SET priority = 'high', summary = 'Other' WHERE id = :id",
         {"id": ids["first"]}),
        # A team deleted: its tickets fall back to no team (ON DELETE SET NULL, a trigger too).
        ("DELETE FROM teams WHERE id = :t", {"t": team_b}),
        ("DELETE FROM tickets WHERE id = :id", {"id": ids["old"]}),
    ]  # fmt: skip
    for number, (sql, params) in enumerate(changes):
        before = await deltas(database)
        await execute(database, sql, **params)
        await assert_exact(database)
        if "priority" in sql:
            assert await deltas(database) == before  # the WHEN clause let it pass
        if number == 4:  # half way: fold, the rest changes folded rows
            assert await fold_all(database) > 0
            assert await deltas(database) == 0
            await assert_exact(database)
    await fold_all(database)
    await assert_exact(database)
    async with database.engine.connect() as conn:  # rows folded to zero were dropped
        zeros = "SELECT count(*) FROM report_rollup WHERE n = 0 AND met = 0 AND finished = 0"
        assert (await conn.execute(text(zeros))).scalar() == 0
    # Bulk paths: a multi-row insert through COPY-like INSERT … SELECT, and TRUNCATE.
    await execute(
        database,
        "INSERT INTO tickets (reporter_id, summary, form_id, form_version, form_response,"
        " created_at, updated_at, assignee_id, first_responded_at)"
        " SELECT :r, 'Bulk', :f, 1, '{}', CAST(:c AS timestamptz) + n * interval '1 hour', :c, :a,"
        "        CAST(:c AS timestamptz) + n * interval '63 minutes'"
        "   FROM generate_series(1, 50) AS n",
        r=customer.user.id,
        f=form["id"],
        c=at(0),
        a=a,
    )
    await assert_exact(database)
    async with database.sessionmaker() as db, db.begin():  # the repair: a recount
        await rollup.rebuild(db)
    assert await deltas(database) == 0
    await assert_exact(database)
    await execute(database, "TRUNCATE tickets CASCADE")
    await assert_exact(database)
    assert all(
        not figures for view in (await stored(database)).values() for figures in view.values()
    )


async def test_the_ticket_service_paths_keep_it_exact_and_the_report_current(
    client: httpx.AsyncClient, database: Database, admin: Person, agent: Person, customer: Person
) -> None:
    """Through the API: create, assign, first reply, resolve, reopen, team, delete."""
    form = await make_form(database, admin, elements=ELEMENTS)
    async with database.sessionmaker() as db, db.begin():
        team = await teams.create_team(db, name="Desk", member_ids=[], assignment="manual")
    created = await client.post(
        "/api/tickets/my",
        json={"formId": form["id"], "summary": "Printer", "formResponse": {"what": "jam"}},
        headers=customer.auth,
    )
    assert created.status_code in (200, 201), created.text
    tid = created.json()["data"]["id"]
    today = datetime.now(UTC).date().isoformat()
    week = {"from": today, "to": today}

    async def report() -> dict[str, Any]:
        got = await client.get("/api/reports/summary", params=week, headers=agent.auth)
        assert got.status_code == 200, got.text
        return dict(got.json()["data"])

    assert (await report())["created"] == 1
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("post", f"/api/tickets/{tid}/assign", {"assigneeId": agent.user.id}),
        ("post", f"/api/tickets/{tid}/comments", {"body": "Looking at it"}),
        ("patch", f"/api/tickets/{tid}", {"status": "resolved"}),
        ("patch", f"/api/tickets/{tid}", {"status": "open"}),
        ("patch", f"/api/tickets/{tid}", {"teamId": team["id"]}),
        ("patch", f"/api/tickets/{tid}", {"status": "resolved"}),
    ]
    for method, url, body in steps:
        response = await client.request(method.upper(), url, json=body, headers=agent.auth)
        assert response.status_code in (200, 201), (url, response.text)
        await assert_exact(database)
        now = await report()
        await fold_all(database)
        assert await report() == now  # the fold changes nothing the report says
    data = await report()
    assert (data["created"], data["resolved"]) == (1, 1)
    assert [a["userId"] for a in data["byAgent"]] == [agent.user.id]
    assert data["byAgent"][0]["firstResponseMinutes"]["p50"] is not None
    narrowed = await client.get(
        "/api/reports/summary", params=week | {"teamId": team["id"]}, headers=agent.auth
    )
    assert narrowed.json()["data"]["created"] == 1
    deleted = await client.delete(f"/api/tickets/{tid}", headers=agent.auth)
    assert deleted.status_code == 200, deleted.text
    await assert_exact(database)
    assert ((await report())["created"], (await report())["resolved"]) == (0, 0)


# The summary's figures as the pre-rollup service computed them straight from the tickets.
_LIVE = """
SELECT count(*) AS n,
       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY minutes) AS pct,
       count(*) FILTER (WHERE sla_state = 'met') AS met,
       count(*) FILTER (WHERE sla_state IN ('met', 'breached')) AS finished
  FROM (SELECT sla_state, extract(epoch FROM {end} - created_at) / 60 AS minutes
          FROM tickets WHERE {column} >= :start AND {column} < :end {team}) AS t
"""


async def test_report_matches_a_live_computation_and_a_fold_changes_nothing(
    client: httpx.AsyncClient,
    database: Database,
    cipher: PiiCipher,
    admin: Person,
    agent: Person,
    other_agent: Person,
    customer: Person,
) -> None:
    rng = random.Random(15)
    form = await make_form(database, admin, elements=ELEMENTS)
    async with database.sessionmaker() as db, db.begin():
        team_id = str(
            (await teams.create_team(db, name="T", member_ids=[], assignment="manual"))["id"]
        )
    rows = []
    for _ in range(300):
        created = at(rng.uniform(-30, 60))
        resolved = created + timedelta(minutes=rng.expovariate(1 / 3000))
        rows.append(
            {
                "created": created,
                "first": created + timedelta(minutes=rng.expovariate(1 / 90))
                if rng.random() < 0.8
                else None,
                "resolved": resolved if rng.random() < 0.5 else None,
                "assignee": rng.choice([agent.user.id, other_agent.user.id, None]),
                "team": rng.choice([team_id, None]),
                "sla": rng.choice(["met", "breached", "running", None]),
            }
        )
    await insert_tickets(database, form["id"], customer.user.id, rows)
    # Fold part of it: the report then reads rollup and deltas together.
    async with database.sessionmaker() as db, db.begin():
        await rollup.fold_once(db, batch=200)
    period = {"from": "2026-03-01", "to": "2026-04-15"}
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 16, tzinfo=UTC)
    for team in (None, team_id):
        params = period | ({"teamId": team} if team else {})
        before = (
            await client.get("/api/reports/summary", params=params, headers=agent.auth)
        ).json()
        await fold_all(database)
        after = (await client.get("/api/reports/summary", params=params, headers=agent.auth)).json()
        assert before == after
        data = after["data"]
        clause = "AND team_id = :team" if team else ""
        binds: dict[str, Any] = {"start": start, "end": end} | ({"team": team} if team else {})
        async with database.engine.connect() as conn:
            made = (
                await conn.execute(
                    text(_LIVE.format(end="first_responded_at", column="created_at", team=clause)),
                    binds,
                )
            ).one()
            done = (
                await conn.execute(
                    text(_LIVE.format(end="resolved_at", column="resolved_at", team=clause)),
                    binds,
                )
            ).one()
        assert data["created"] == made.n and data["resolved"] == done.n
        assert data["slaFinished"] == made.finished
        assert data["slaMet"] == round(made.met / made.finished, 4)
        pairs = ((data["firstResponseMinutes"], made.pct), (data["resolutionMinutes"], done.pct))
        for got, exact in pairs:
            for p, value in zip(("p50", "p90"), exact, strict=True):
                assert abs(got[p] - value) <= 0.05 * value + 1.01, (p, got[p], value)
        assert sum(d["created"] for d in data["byDay"]) == made.n
        assert sum(d["resolved"] for d in data["byDay"]) == done.n


async def test_two_folds_at_once_count_every_delta_once(
    database: Database, admin: Person, agent: Person, customer: Person
) -> None:
    form = await make_form(database, admin, elements=ELEMENTS)
    rows = [
        {"created": at(n % 5, n), "first": at(n % 5, 2 * n), "assignee": agent.user.id}
        for n in range(60)
    ]
    await insert_tickets(database, form["id"], customer.user.id, rows)
    # Spread over many delta rows: one statement per ticket above appended one batch each.
    total = await deltas(database)
    assert total >= 60
    want = await expected(database)
    async with database.sessionmaker() as first_db, database.sessionmaker() as second_db:
        await first_db.begin()
        first = await rollup.fold_once(first_db, batch=total // 2)  # holds its rows, uncommitted
        await second_db.begin()
        # The second skips the rows the first holds and waits on the rollup rows it shares.
        second_task = asyncio.create_task(rollup.fold_once(second_db, batch=total))
        await asyncio.sleep(0.3)
        await first_db.commit()
        second = await asyncio.wait_for(second_task, 30)
        await second_db.commit()
    assert (first, second) == (total // 2, total - total // 2)
    assert await deltas(database) == 0
    assert await stored(database) == want


async def test_seed_bulk_leaves_the_rollup_exact(database: Database, cipher: PiiCipher) -> None:
    from tekudasai.seed import seed_bulk

    await seed_bulk(database, cipher, users=30, tickets=400, forms=1)
    await execute(
        database,
        "UPDATE tickets SET first_responded_at = created_at + (id % 97) * interval '1 minute',"
        " resolved_at = CASE WHEN status IN ('resolved', 'closed')"
        " THEN created_at + (id % 13) * interval '1 hour' END, sla_state = 'met'",
    )
    await assert_exact(database)
    assert await deltas(database) > 0
    await seed_bulk(database, cipher, users=0, tickets=100, forms=0)  # adds to existing ones
    assert await deltas(database) == 0  # it recounted (its load skips the triggers)
    await assert_exact(database)
    created = (await stored(database))[(True, True)][0]
    assert sum(n for (_, kind, *_), (n, _, _) in created.items() if kind == 1) == 500


def test_blocks_tile_the_period_exactly() -> None:
    rng = random.Random(3)
    for _ in range(500):
        first = date(2024, 1, 1) + timedelta(days=rng.randrange(1000))
        last = first + timedelta(days=rng.randrange(366))
        tiles = rollup.blocks(first, last)
        covered = []
        for level, start in tiles:
            assert rollup.block_start(start, level) == start  # aligned
            covered += [start + timedelta(days=n) for n in range(1 << level)]
        assert covered == [first + timedelta(days=n) for n in range((last - first).days + 1)]
        assert len(tiles) <= 2 * (rollup.TOP_LEVEL + 1) + 1  # a year: a few blocks only


def _percentile_cont(values: list[float], p: float) -> float:
    ordered = sorted(values)
    position = p * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (position - below) * (ordered[above] - ordered[below])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(min_value=0, max_value=2, allow_nan=False),
            st.floats(min_value=0, max_value=600_000, allow_nan=False),
        ),
        min_size=1,
        max_size=300,
    ),
    st.floats(min_value=0, max_value=1),
)
def test_histogram_percentile_is_within_the_documented_bound(values: list[float], p: float) -> None:
    histogram = Counter(rollup.bucket_of(v) for v in values)
    approx = rollup.percentiles(histogram.items(), (p,))
    assert approx is not None
    exact = _percentile_cont(values, p)
    assert abs(approx[0] - exact) <= 0.05 * exact + 1.0 + 1e-9, (approx, exact)
    if min(values) >= 1:  # no value under a minute: 5 % alone
        assert abs(approx[0] - exact) <= 0.05 * exact * (1 + 1e-9), (approx, exact)


async def test_the_sql_buckets_are_the_documented_ones(database: Database) -> None:
    rng = random.Random(7)
    minutes = [0.0, 0.5, 0.999, 1.0, 1.04, 1.06, 59.9, 60.0, 1440.0, 525_600.0] + [
        rng.uniform(0, 100_000) for _ in range(200)
    ]
    async with database.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT m, tk_report_bucket(m * interval '1 minute')"
                " FROM unnest(CAST(:m AS float8[])) AS m"
            ),
            {"m": minutes},
        )
        for value, bucket in rows:
            lo, hi = rollup.bucket_bounds(bucket)
            assert lo - 1e-9 <= value < hi + 1e-9, (value, bucket)
            assert bucket == rollup.bucket_of(value)
        negative = await conn.scalar(text("SELECT tk_report_bucket(interval '-5 minutes')"))
    assert negative == 0


async def test_the_periodic_job_folds_everything(
    database: Database,
    settings: Settings,
    admin: Person,
    agent: Person,
    customer: Person,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tekudasai.jobs.worker import JobContext
    from tekudasai.tasks import PERIODIC, TASKS

    form = await make_form(database, admin, elements=ELEMENTS)
    rows = [
        {"created": at(n, n), "first": at(n, 3 * n), "assignee": agent.user.id} for n in range(9)
    ]
    await insert_tickets(database, form["id"], customer.user.id, rows)
    monkeypatch.setattr(rollup, "FOLD_BATCH", 4)  # several batches, one transaction each
    await TASKS[rollup.FOLD](JobContext(database, settings, job_id=0, attempt=1))
    assert await deltas(database) == 0
    await assert_exact(database)
    assert rollup.FOLD in {p.name for p in PERIODIC}
