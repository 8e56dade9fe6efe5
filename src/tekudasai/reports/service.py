"""The reports summary: ticket figures over a period of days, computed by SQL.

Definitions (every day is a UTC calendar day):

- Period: `from` and `to` are dates (`YYYY-MM-DD`), both included: the period runs from `from`
  00:00 UTC to the end of `to`. Default: the last 30 days up to today. At most 366 days;
  `from` after `to`, a bad date or a longer period is a 400 with a field error.
- `created`: tickets created in the period.
- `resolved`: tickets whose `resolved_at` (when they last became resolved; cleared on reopen)
  lies in the period.
- `backlog`: tickets open, in progress or pending *now* (the request's moment, not the end of
  the period: the ticket table keeps no status history to ask "at `to`").
- `firstResponseMinutes`: p50 and p90 of `first_responded_at - created_at` in wall-clock
  minutes, over tickets created in the period that have a first response; null when none has.
  Approximate: read from histograms with buckets 5 % wide (reports/rollup.py), interpolated
  as `percentile_cont` does; |approx - exact| <= 5 % of the exact value (plus up to 1 minute
  when durations under a minute take part; negative durations count as 0).
- `resolutionMinutes`: p50 and p90 of `resolved_at - created_at` in wall-clock minutes over the
  tickets resolved in the period (the `resolved` ones); approximate within the same bound.
- `slaMet`: of the tickets created in the period whose SLA clock has finished (state `met` or
  `breached`), the share that met it (0…1); null when there is none. `slaFinished` is that count.
- `byDay`: every day of the period (days without tickets as zeros), tickets created and
  resolved that day.
- `byAgent`: per assignee (agents with a ticket created or resolved in the period): `assigned`
  = tickets created in the period and assigned to them now; `resolved` = tickets resolved in the
  period assigned to them; their first-response p50/p90 over their `assigned` tickets (within
  the same bound).
  Unassigned tickets count in the totals only. Ordered by name.
- `teamId` narrows every figure to the tickets of that team (an unknown team is a 400).

Every count is exact and current; none is computed from the tickets here. Triggers on
`tickets` append signed deltas for every change that moves a figure (creation, reassignment,
team change, resolve, reopen, first response, SLA state, deletion) to `report_deltas`; the
periodic `reports.fold` job adds them into `report_rollup` (per day; histograms also per
aligned block of 2**k days). One statement reads the rollup rows of the period (the day rows of
the counts, the fewest blocks tiling the period for the histograms) plus the deltas not folded
yet, so a report is the same before and after a fold (reports/rollup.py). The backlog is
live: the per-status totals the ticket triggers keep (`ticket_counts`), or for a team an
index-only count (`ix_tickets_backlog_team_id`). Only the agents' names are decrypted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts.models import User
from tekudasai.core.crypto import PiiCipher
from tekudasai.core.errors import ValidationFailed
from tekudasai.reports import rollup
from tekudasai.reports.rollup import CREATED, FIRST_RESPONSE, RESOLUTION, RESOLVED
from tekudasai.teams.models import Team

DEFAULT_DAYS = 30
MAX_DAYS = 366
BACKLOG_STATUSES = ("open", "in_progress", "pending")
PERCENTILES = (0.5, 0.9)


@dataclass(frozen=True)
class Period:
    first: date
    last: date
    team_id: str | None = None

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Exclusive: midnight after the last day."""
        return datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=UTC)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _parse_day(value: str, field: str, errors: list[dict[str, str]]) -> date | None:
    try:
        if not _DAY.fullmatch(value):  # fromisoformat takes week dates (2026-W01-1) too
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        errors.append({"field": field, "message": "not a date (YYYY-MM-DD)"})
        return None


def period_of(
    first: str | None, last: str | None, team_id: str | None, *, today: date | None = None
) -> Period:
    """The period asked for, checked; field errors name `from`, `to` or `teamId`."""
    today = today or datetime.now(UTC).date()
    errors: list[dict[str, str]] = []
    end = _parse_day(last, "to", errors) if last else today
    start = _parse_day(first, "from", errors) if first else None
    if errors:
        raise ValidationFailed(f"{errors[0]['field']}: {errors[0]['message']}", errors=errors)
    assert end is not None
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        errors.append({"field": "from", "message": "after `to`"})
    elif (end - start).days + 1 > MAX_DAYS:
        errors.append({"field": "to", "message": f"at most {MAX_DAYS} days after `from`"})
    if errors:
        raise ValidationFailed(f"{errors[0]['field']}: {errors[0]['message']}", errors=errors)
    return Period(start, end, team_id or None)


# One statement (one snapshot: a fold committing meanwhile is counted once): byDay from the day
# rows for all assignees, everything else from the rows of the blocks tiling the period (of the
# team, or of all teams: '*'), each plus the deltas not folded yet.
_FIGURES = """
WITH blocks AS (
    SELECT * FROM unnest(CAST(:levels AS smallint[]), CAST(:starts AS date[])) AS b(level, start)
), deltas AS MATERIALIZED (
    SELECT r.day, r.kind, r.assignee_id, r.bucket, r.n, r.met, r.finished
      FROM report_deltas r
     WHERE r.day >= :first AND r.day <= :last {team}
), per_day AS (
    SELECT r.start AS day, r.kind, r.n
      FROM report_rollup r
     WHERE r.level = 0 AND r.start >= :first AND r.start <= :last AND r.team_id = :rollup_team
       AND r.kind IN (1, 3) AND r.assignee_id = '*'
    UNION ALL
    SELECT day, kind, n FROM deltas WHERE kind IN (1, 3)
), figures AS (
    SELECT r.kind, r.assignee_id, r.bucket, r.n, r.met, r.finished
      FROM blocks b
      JOIN report_rollup r
        ON r.level = b.level AND r.start = b.start AND r.team_id = :rollup_team
     WHERE r.assignee_id <> '*'
    UNION ALL
    SELECT kind, assignee_id, bucket, n, met, finished FROM deltas
)
SELECT kind, 0 AS no_day, 1 AS no_agent, 1 AS no_bucket, day, NULL AS assignee_id,
       NULL AS bucket, sum(n) AS n, 0 AS met, 0 AS finished
  FROM per_day
 GROUP BY kind, day
UNION ALL
SELECT kind, 1, GROUPING(assignee_id), GROUPING(bucket), NULL, assignee_id, bucket,
       sum(n), sum(met), sum(finished)
  FROM figures
 GROUP BY GROUPING SETS ((kind, assignee_id), (kind, bucket), (kind, assignee_id, bucket))
"""


def figures_query(period: Period) -> tuple[str, dict[str, Any]]:
    """The figures statement of a period and its parameters (the bench explains it too)."""
    tiles = rollup.blocks(period.first, period.last)
    params: dict[str, Any] = {
        "first": period.first,
        "last": period.last,
        "levels": [level for level, _ in tiles],
        "starts": [day for _, day in tiles],
        "rollup_team": period.team_id or "*",
    }
    team = ""
    if period.team_id is not None:
        team, params["team"] = "AND r.team_id = :team", period.team_id
    return _FIGURES.format(team=team), params


# The backlog now: for everyone from the per-status totals the ticket triggers keep
# (ticket_counts, a few rows), for a team an index-only count (ix_tickets_backlog_team_id).
_BACKLOG = """
SELECT coalesce(sum(n), 0) FROM ticket_counts
 WHERE scope = 'all' AND key = '' AND status IN ('open', 'in_progress', 'pending')
"""
_TEAM_BACKLOG = """
SELECT count(*) FROM tickets
 WHERE team_id = :team AND team_id IS NOT NULL AND status IN ('open', 'in_progress', 'pending')
"""


def _pct(values: list[float] | None) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None}
    return {"p50": round(values[0], 2), "p90": round(values[1], 2)}


async def _check_team(db: AsyncSession, team_id: str) -> None:
    if await db.scalar(select(Team.id).where(Team.id == team_id)) is None:
        raise ValidationFailed(
            "teamId: no such team", errors=[{"field": "teamId", "message": "no such team"}]
        )


async def summary(db: AsyncSession, cipher: PiiCipher, period: Period) -> dict[str, Any]:
    if period.team_id is not None:
        await _check_team(db, period.team_id)
    sql, params = figures_query(period)
    rows = (await db.execute(text(sql), params)).mappings().all()
    if period.team_id is None:
        backlog = await db.scalar(text(_BACKLOG))
    else:
        backlog = await db.scalar(text(_TEAM_BACKLOG), {"team": period.team_id})

    totals: dict[str, Any] = {"created": 0, "resolved": 0, "met": 0, "finished": 0}
    days = {period.first + timedelta(days=n): [0, 0] for n in range(period.days)}
    histograms: dict[int, list[tuple[int, int]]] = {FIRST_RESPONSE: [], RESOLUTION: []}
    agent_histograms: dict[str, list[tuple[int, int]]] = {}
    agents: dict[str, dict[str, Any]] = {}

    def agent(user_id: str) -> dict[str, Any]:
        return agents.setdefault(
            user_id,
            {"assigned": 0, "resolved": 0, "firstResponseMinutes": _pct(None)},
        )

    for row in rows:
        kind, n = row["kind"], int(row["n"])
        if not row["no_day"]:  # (kind, day)
            if kind in (CREATED, RESOLVED):
                days[row["day"]][0 if kind == CREATED else 1] = n
        elif not row["no_agent"] and row["no_bucket"]:  # (kind, assignee)
            if kind in (CREATED, RESOLVED) and row["assignee_id"] and n:
                agent(row["assignee_id"])["assigned" if kind == CREATED else "resolved"] = n
        elif row["no_agent"]:  # (kind, bucket): the totals
            if kind == CREATED:
                totals.update(created=n, met=int(row["met"]), finished=int(row["finished"]))
            elif kind == RESOLVED:
                totals["resolved"] = n
            else:
                histograms[kind].append((row["bucket"], n))
        elif kind == FIRST_RESPONSE and row["assignee_id"]:  # (kind, assignee, bucket)
            agent_histograms.setdefault(row["assignee_id"], []).append((row["bucket"], n))
    for user_id, figures in agents.items():
        figures["firstResponseMinutes"] = _pct(
            rollup.percentiles(agent_histograms.get(user_id, []), PERCENTILES)
        )
    first_response = _pct(rollup.percentiles(histograms[FIRST_RESPONSE], PERCENTILES))
    resolution = _pct(rollup.percentiles(histograms[RESOLUTION], PERCENTILES))

    names = await _names(db, cipher, list(agents))
    by_agent = [
        {"userId": user_id, "name": names.get(user_id, "(deleted user)"), **figures}
        for user_id, figures in agents.items()
    ]
    by_agent.sort(key=lambda a: (a["name"].casefold(), a["userId"]))
    return {
        "from": period.first.isoformat(),
        "to": period.last.isoformat(),
        "teamId": period.team_id,
        "created": totals["created"],
        "resolved": totals["resolved"],
        "backlog": int(backlog or 0),
        "firstResponseMinutes": first_response,
        "resolutionMinutes": resolution,
        "slaMet": round(totals["met"] / totals["finished"], 4) if totals["finished"] else None,
        "slaFinished": totals["finished"],
        "byDay": [
            {"date": day.isoformat(), "created": c, "resolved": r} for day, (c, r) in days.items()
        ],
        "byAgent": by_agent,
    }


async def _names(db: AsyncSession, cipher: PiiCipher, user_ids: list[str]) -> dict[str, str]:
    """Decrypt the names of these few users only (names are encrypted PII)."""
    if not user_ids:
        return {}
    rows = await db.execute(select(User.id, User.name_ciphertext).where(User.id.in_(user_ids)))
    return {uid: cipher.decrypt(ciphertext, context="user.name") for uid, ciphertext in rows}
