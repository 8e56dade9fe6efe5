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
- `firstResponseMinutes`: p50 and p90 (linear interpolation, `percentile_cont`) of
  `first_responded_at - created_at` in wall-clock minutes, over tickets created in the period
  that have a first response; null when none has.
- `resolutionMinutes`: p50 and p90 of `resolved_at - created_at` in wall-clock minutes over the
  tickets resolved in the period (the `resolved` ones).
- `slaMet`: of the tickets created in the period whose SLA clock has finished (state `met` or
  `breached`), the share that met it (0…1); null when there is none. `slaFinished` is that count.
- `byDay`: every day of the period (days without tickets as zeros), tickets created and
  resolved that day.
- `byAgent`: per assignee (agents with a ticket created or resolved in the period): `assigned`
  = tickets created in the period and assigned to them now; `resolved` = tickets resolved in the
  period assigned to them; their first-response p50/p90 over their `assigned` tickets.
  Unassigned tickets count in the totals only. Ordered by name.
- `teamId` narrows every figure to the tickets of that team (an unknown team is a 400).

Two statements do the work, each one range scan over an index (`ix_tickets_created_at`,
`ix_tickets_resolved_at`) grouped by GROUPING SETS (the whole period, per day, per assignee);
a third counts the backlog (`ix_tickets_status_id`). Tickets are never loaded into Python:
only one row per day and per agent comes back, and only those agents' names are decrypted.
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
from tekudasai.teams.models import Team

DEFAULT_DAYS = 30
MAX_DAYS = 366
BACKLOG_STATUSES = ("open", "in_progress", "pending")


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


# One scan of the tickets created in the period, three groupings: () the totals, (day), and
# (assignee_id). percentile_cont skips the nulls (tickets without a first response).
_CREATED = """
SELECT GROUPING(day) AS by_day, GROUPING(assignee_id) AS by_agent, day, assignee_id,
       count(*) AS n,
       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY minutes) AS pct,
       count(*) FILTER (WHERE sla_state = 'met') AS met,
       count(*) FILTER (WHERE sla_state IN ('met', 'breached')) AS finished
  FROM (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, assignee_id, sla_state,
               extract(epoch FROM first_responded_at - created_at) / 60 AS minutes
          FROM tickets
         WHERE created_at >= :start AND created_at < :end {team}) AS t
 GROUP BY GROUPING SETS ((), (day), (assignee_id))
"""

_RESOLVED = """
SELECT GROUPING(day) AS by_day, GROUPING(assignee_id) AS by_agent, day, assignee_id,
       count(*) AS n,
       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY minutes) AS pct
  FROM (SELECT (resolved_at AT TIME ZONE 'UTC')::date AS day, assignee_id,
               extract(epoch FROM resolved_at - created_at) / 60 AS minutes
          FROM tickets
         WHERE resolved_at >= :start AND resolved_at < :end {team}) AS t
 GROUP BY GROUPING SETS ((), (day), (assignee_id))
"""

_BACKLOG = """
SELECT count(*) FROM tickets WHERE status IN ('open', 'in_progress', 'pending') {team}
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
    params: dict[str, Any] = {"start": period.start, "end": period.end}
    team = ""
    if period.team_id is not None:
        await _check_team(db, period.team_id)
        team, params["team"] = "AND team_id = :team", period.team_id

    created_rows = (await db.execute(text(_CREATED.format(team=team)), params)).mappings().all()
    resolved_rows = (await db.execute(text(_RESOLVED.format(team=team)), params)).mappings().all()
    backlog = await db.scalar(
        text(_BACKLOG.format(team=team)), {"team": period.team_id} if team else {}
    )

    totals: dict[str, Any] = {"created": 0, "resolved": 0, "met": 0, "finished": 0}
    first_response = resolution = _pct(None)
    days = {period.first + timedelta(days=n): [0, 0] for n in range(period.days)}
    agents: dict[str, dict[str, Any]] = {}

    def agent(user_id: str) -> dict[str, Any]:
        return agents.setdefault(
            user_id,
            {"assigned": 0, "resolved": 0, "firstResponseMinutes": _pct(None)},
        )

    for row in created_rows:
        if row["by_day"] and row["by_agent"]:  # the grand total
            totals.update(created=row["n"], met=row["met"], finished=row["finished"])
            first_response = _pct(row["pct"])
        elif not row["by_day"]:
            days[row["day"]][0] = row["n"]
        elif row["assignee_id"] is not None:
            figures = agent(row["assignee_id"])
            figures["assigned"] = row["n"]
            figures["firstResponseMinutes"] = _pct(row["pct"])
    for row in resolved_rows:
        if row["by_day"] and row["by_agent"]:
            totals["resolved"] = row["n"]
            resolution = _pct(row["pct"])
        elif not row["by_day"]:
            days[row["day"]][1] = row["n"]
        elif row["assignee_id"] is not None:
            agent(row["assignee_id"])["resolved"] = row["n"]

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
