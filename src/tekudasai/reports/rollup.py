"""The reports rollup: what migration 0021's triggers append, how it is folded and read.

Kinds (one row per UTC day, team and assignee; '' = none; the fold adds the same per block of
2**k days, for all teams (team '*') and, per day, for all assignees (assignee '*')):

- 1 created: tickets created that day (`n`), of them with SLA state met (`met`) and met or
  breached (`finished`);
- 2 first response: tickets created that day with a first response, per histogram bucket of
  `first_responded_at - created_at`;
- 3 resolved: tickets whose `resolved_at` is that day;
- 4 resolution: the same per bucket of `resolved_at - created_at` (no assignee dimension: only
  the totals have resolution percentiles).

Buckets (the SQL function `tk_report_bucket`): bucket 0 holds [0, 1) minute (and negative
durations), bucket b >= 1 holds [1.05**(b-1), 1.05**b) minutes, so each is 5 % wide relative to
its lower edge. A percentile is interpolated as `percentile_cont` does (between the values at
ranks floor and ceil of p*(N-1)), each value estimated inside its bucket (the i-th of c values
in [lo, hi) at lo + (i + 0.5)/c * (hi - lo)). Every estimate and its true value share a bucket,
so the error is at most that bucket's width: |approx - exact| <= 0.05 * exact, plus up to 1
minute when values under a minute take part.

Writers (the triggers) only append to `report_deltas`; `fold` moves deltas into
`report_rollup`; readers add rollup and unfolded deltas in one statement (one snapshot), so a
fold running at the same time is counted once either way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.jobs.worker import JobContext

FOLD = "reports.fold"
FOLD_EVERY_S = 60.0
FOLD_BATCH = 20_000
TOP_LEVEL = 8  # blocks of 1, 2, 4 … 256 days (migration 0021)
EPOCH = date(1970, 1, 1)
GROWTH = 1.05

CREATED, FIRST_RESPONSE, RESOLVED, RESOLUTION = 1, 2, 3, 4

# Take a batch of deltas (rows another fold holds are skipped, so two folds never take the same
# row), and add their sums to every level in one statement. ORDER BY gives every fold the same
# lock order over the rollup rows.
_FOLD = f"""
WITH moved AS (
    DELETE FROM report_deltas
     WHERE id = ANY(ARRAY(SELECT id FROM report_deltas ORDER BY id LIMIT :batch
                          FOR UPDATE SKIP LOCKED))
    RETURNING day, kind, team_id, assignee_id, bucket, n, met, finished
), sums AS (
    -- Every block level; each team and all teams ('*'); per day also all assignees ('*')
    -- for the counts (the report's byDay).
    SELECT l.level::smallint AS level,
           m.day - (((m.day - DATE '1970-01-01') % (1 << l.level) + (1 << l.level))
                    % (1 << l.level)) AS start,
           m.kind, t.team_id, a.assignee_id, m.bucket,
           sum(m.n) AS n, sum(m.met) AS met, sum(m.finished) AS finished
      FROM moved m
     CROSS JOIN generate_series(0, {TOP_LEVEL}) AS l(level)
     CROSS JOIN LATERAL (VALUES (m.team_id), ('*')) AS t(team_id)
     CROSS JOIN LATERAL (VALUES (m.assignee_id), ('*')) AS a(assignee_id)
     WHERE a.assignee_id <> '*' OR (l.level = 0 AND m.kind IN (1, 3))
     GROUP BY 1, 2, m.kind, t.team_id, a.assignee_id, m.bucket
), upserted AS (
    INSERT INTO report_rollup AS r
           (level, start, kind, team_id, assignee_id, bucket, n, met, finished)
    SELECT level, start, kind, team_id, assignee_id, bucket, n, met, finished
      FROM sums
     WHERE n <> 0 OR met <> 0 OR finished <> 0
     ORDER BY level, start, team_id, kind, assignee_id, bucket
    ON CONFLICT (level, start, kind, team_id, assignee_id, bucket) DO UPDATE
       SET n = r.n + EXCLUDED.n, met = r.met + EXCLUDED.met,
           finished = r.finished + EXCLUDED.finished
    RETURNING level, start, kind, team_id, assignee_id, bucket, n, met, finished
), emptied AS (
    SELECT * FROM upserted WHERE n = 0 AND met = 0 AND finished = 0
)
SELECT (SELECT count(*) FROM moved) AS moved,
       (SELECT array_agg(level) FROM emptied) AS levels,
       (SELECT array_agg(start) FROM emptied) AS starts,
       (SELECT array_agg(kind) FROM emptied) AS kinds,
       (SELECT array_agg(team_id) FROM emptied) AS teams,
       (SELECT array_agg(assignee_id) FROM emptied) AS assignees,
       (SELECT array_agg(bucket) FROM emptied) AS buckets
"""

# Rows the fold brought to zero (a ticket moved to another agent, day or bucket) are dropped,
# in the fold's transaction (it holds their locks), so the rollup does not grow with them.
_PRUNE = """
DELETE FROM report_rollup r
 USING unnest(CAST(:levels AS smallint[]), CAST(:starts AS date[]), CAST(:kinds AS smallint[]),
              CAST(:teams AS text[]), CAST(:assignees AS text[]), CAST(:buckets AS smallint[]))
       AS z(level, start, kind, team_id, assignee_id, bucket)
 WHERE (r.level, r.start, r.kind, r.team_id, r.assignee_id, r.bucket)
     = (z.level, z.start, z.kind, z.team_id, z.assignee_id, z.bucket)
   AND r.n = 0 AND r.met = 0 AND r.finished = 0
"""


async def fold_once(db: AsyncSession, batch: int = FOLD_BATCH) -> int:
    """Fold up to `batch` deltas in the caller's transaction; returns how many."""
    row = (await db.execute(text(_FOLD), {"batch": batch})).one()
    if row.levels:
        await db.execute(
            text(_PRUNE),
            {
                "levels": row.levels,
                "starts": row.starts,
                "kinds": row.kinds,
                "teams": row.teams,
                "assignees": row.assignees,
                "buckets": row.buckets,
            },
        )
    return int(row.moved)


async def fold_task(ctx: JobContext) -> None:
    """Periodic: fold every delta there is, a batch per transaction."""
    while True:
        async with ctx.database.sessionmaker() as session, session.begin():
            moved = await fold_once(session, FOLD_BATCH)
        if moved < FOLD_BATCH:
            return


async def rebuild(db: AsyncSession) -> None:
    """Recount the rollup from the tickets (bulk loads, repairs); keeps ticket writers out."""
    await db.execute(text("SELECT tk_report_rollup_rebuild()"))


def block_start(day: date, level: int) -> date:
    width = 1 << level
    return day - timedelta(days=(day - EPOCH).days % width)


def blocks(first: date, last: date) -> list[tuple[int, date]]:
    """The aligned blocks (level, start) that tile first … last exactly, largest first."""
    out: list[tuple[int, date]] = []
    day = first
    while day <= last:
        level = TOP_LEVEL
        while level > 0 and (
            block_start(day, level) != day or day + timedelta(days=(1 << level) - 1) > last
        ):
            level -= 1
        out.append((level, day))
        day += timedelta(days=1 << level)
    return out


def bucket_bounds(bucket: int) -> tuple[float, float]:
    """Minutes [lo, hi) of a bucket."""
    if bucket <= 0:
        return 0.0, 1.0
    return GROWTH ** (bucket - 1), GROWTH**bucket


def bucket_of(minutes: float) -> int:
    """Python's mirror of tk_report_bucket (for tests and tools)."""
    if minutes < 1:
        return 0
    return min(1 + math.floor(math.log(minutes) / math.log(GROWTH)), 32767)


def percentiles(histogram: Iterable[tuple[int, int]], ps: tuple[float, ...]) -> list[float] | None:
    """Percentiles (0…1, interpolated like percentile_cont) of (bucket, count) pairs; None
    when there are no values."""
    counts = sorted((b, c) for b, c in histogram if c > 0)
    total = sum(c for _, c in counts)
    if total == 0:
        return None

    def value(rank: int) -> float:
        seen = 0
        for bucket, count in counts:
            if rank < seen + count:
                lo, hi = bucket_bounds(bucket)
                return lo + (rank - seen + 0.5) / count * (hi - lo)
            seen += count
        raise AssertionError("rank beyond the histogram")

    result = []
    for p in ps:
        position = p * (total - 1)
        below = math.floor(position)
        low = value(below)
        high = value(min(below + 1, total - 1))
        result.append(low + (position - below) * (high - low))
    return result
