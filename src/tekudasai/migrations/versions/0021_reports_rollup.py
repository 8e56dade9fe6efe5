"""reports: a per-day rollup of the report figures kept current by triggers (#15)

A year of a million tickets cannot be scanned in the half second the reports summary has, so
the figures come from `report_rollup`: counts per (day, kind, team, assignee) and histograms of
minutes in logarithmic buckets (reports/rollup.py explains the kinds and the bucket bound).

Triggers on `tickets` append signed rows (+1 for a ticket's new contribution, -1 for its old
one) to `report_deltas`, an append-only table: a ticket's transaction never updates a shared
counter row, so concurrent creations do not queue on one row lock. The periodic job
`reports.fold` moves the deltas into the rollup (one statement: delete-returning, then upsert
the sums); the report reads rollup plus the deltas not folded yet, so it is exact whenever the
fold last ran. Rows are kept for aligned blocks of 1, 2, 4 … 256 days (`level` k = blocks of
2**k days from 1970-01-01; a period of up to 366 days is at most ~17 blocks, so a year reads a
few thousand rows per block instead of every day's), for each team and for all teams
(team_id '*'), and per day for all assignees (assignee_id '*', the counts of `byDay`).

Bulk loaders may `SET LOCAL tekudasai.skip_report_rollup = on` and call
`SELECT tk_report_rollup_rebuild()` once at the end (seed_bulk does).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TOP_LEVEL = 8  # blocks of up to 2**8 = 256 days
BACKLOG_WHERE = "team_id IS NOT NULL AND status IN ('open', 'in_progress', 'pending')"

# Minutes to a bucket: 0 is [0, 1) minute (negative durations too), b >= 1 is
# [1.05**(b-1), 1.05**b): each bucket 5 % wide relative to its lower edge.
BUCKET_SQL = """
CREATE FUNCTION tk_report_bucket(d interval) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN d IS NULL THEN NULL
        WHEN extract(epoch FROM d) < 60 THEN 0
        ELSE least(1 + floor(ln(extract(epoch FROM d)::float8 / 60) / ln(1.05)), 32767)
    END::smallint
$$
"""

COLUMNS = "day, kind, team_id, assignee_id, bucket, n, met, finished"
KEY = "level, start, kind, team_id, assignee_id, bucket"


def _contributions(source: str, sign: int) -> str:
    """What each ticket row of `source` adds to the figures (times `sign`): kind 1 created
    (with SLA met / finished), 2 first-response minutes of a created ticket, 3 resolved,
    4 resolution minutes (no assignee: only the totals have resolution percentiles)."""
    return f"""
        SELECT v.day, v.kind, v.team_id, v.assignee_id, v.bucket,
               {sign} * v.n AS n, {sign} * v.met AS met, {sign} * v.finished AS finished
          FROM {source} CROSS JOIN LATERAL (VALUES
            ((t.created_at AT TIME ZONE 'UTC')::date, 1::smallint, coalesce(t.team_id, ''),
             coalesce(t.assignee_id, ''), (-1)::smallint, 1,
             CASE WHEN t.sla_state = 'met' THEN 1 ELSE 0 END,
             CASE WHEN t.sla_state IN ('met', 'breached') THEN 1 ELSE 0 END),
            ((t.created_at AT TIME ZONE 'UTC')::date, 2::smallint, coalesce(t.team_id, ''),
             coalesce(t.assignee_id, ''), tk_report_bucket(t.first_responded_at - t.created_at),
             1, 0, 0),
            ((t.resolved_at AT TIME ZONE 'UTC')::date, 3::smallint, coalesce(t.team_id, ''),
             coalesce(t.assignee_id, ''), (-1)::smallint, 1, 0, 0),
            ((t.resolved_at AT TIME ZONE 'UTC')::date, 4::smallint, coalesce(t.team_id, ''),
             ''::text, tk_report_bucket(t.resolved_at - t.created_at), 1, 0, 0)
          ) AS v(day, kind, team_id, assignee_id, bucket, n, met, finished)
         WHERE v.day IS NOT NULL AND v.bucket IS NOT NULL
    """


def _record(name: str) -> str:
    columns = ("created_at", "first_responded_at", "resolved_at", "team_id", "assignee_id")
    picked = ", ".join(f"{name}.{c} AS {c}" for c in (*columns, "sla_state"))
    return f"(SELECT {picked}) AS t"


def _append(contributions: str) -> str:
    # One row per key; a change that moves nothing (e.g. the resolution row of a reassigned
    # ticket, which has no assignee) appends nothing.
    return f"""
        INSERT INTO report_deltas ({COLUMNS})
        SELECT day, kind, team_id, assignee_id, bucket, sum(n), sum(met), sum(finished)
          FROM ({contributions}) AS c
         GROUP BY day, kind, team_id, assignee_id, bucket
        HAVING sum(n) <> 0 OR sum(met) <> 0 OR sum(finished) <> 0;
    """


SKIP_CHECK = (
    "IF current_setting('tekudasai.skip_report_rollup', true) = 'on' THEN RETURN NULL; END IF;"
)
WATCHED = ("created_at", "resolved_at", "first_responded_at", "assignee_id", "team_id", "sla_state")


def _block_start(day: str, level: str) -> str:
    width = f"(1 << {level})"
    return f"({day} - ((({day} - DATE '1970-01-01') % {width} + {width}) % {width}))"


# The rebuild: the all-teams and all-assignees rows of each day, then every block level from
# the level below.
SUMMED_SQL = f"""
    INSERT INTO report_rollup ({KEY}, n, met, finished)
    SELECT 0, start, kind, '*', assignee_id, bucket, sum(n), sum(met), sum(finished)
      FROM report_rollup WHERE level = 0
     GROUP BY start, kind, assignee_id, bucket;
    INSERT INTO report_rollup ({KEY}, n, met, finished)
    SELECT 0, start, kind, team_id, '*', bucket, sum(n), sum(met), sum(finished)
      FROM report_rollup WHERE level = 0 AND kind IN (1, 3)
     GROUP BY start, kind, team_id, bucket;
    FOR lvl IN 1..{TOP_LEVEL} LOOP
        INSERT INTO report_rollup ({KEY}, n, met, finished)
        SELECT lvl, {_block_start("start", "lvl")}, kind, team_id, assignee_id, bucket,
               sum(n), sum(met), sum(finished)
          FROM report_rollup
         WHERE level = lvl - 1 AND assignee_id <> '*'
         GROUP BY 2, kind, team_id, assignee_id, bucket;
    END LOOP;
"""

_UPDATE_APPEND = _append(
    _contributions(_record("NEW"), 1) + " UNION ALL " + _contributions(_record("OLD"), -1)
)

FUNCTIONS = [
    BUCKET_SQL,
    f"""
    CREATE FUNCTION tk_report_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {SKIP_CHECK}
        {_append(_contributions("new_rows AS t", 1))}
        RETURN NULL;
    END
    $$
    """,
    f"""
    CREATE FUNCTION tk_report_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {SKIP_CHECK}
        {_UPDATE_APPEND}
        RETURN NULL;
    END
    $$
    """,
    f"""
    CREATE FUNCTION tk_report_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {SKIP_CHECK}
        {_append(_contributions("old_rows AS t", -1))}
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION tk_report_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM report_deltas;
        DELETE FROM report_rollup;
        RETURN NULL;
    END
    $$
    """,
    # A recount from the tickets, for bulk loaders and repairs; writers are kept out meanwhile.
    f"""
    CREATE FUNCTION tk_report_rollup_rebuild() RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
        lvl integer;
    BEGIN
        LOCK TABLE tickets IN SHARE MODE;
        -- TRUNCATE: no dead copy of millions of rows left behind (reports wait meanwhile).
        TRUNCATE report_deltas, report_rollup;
        INSERT INTO report_rollup ({KEY}, n, met, finished)
        SELECT 0, day, kind, team_id, assignee_id, bucket, sum(n), sum(met), sum(finished)
          FROM ({_contributions("tickets AS t", 1)}) AS c
         GROUP BY day, kind, team_id, assignee_id, bucket;
        {SUMMED_SQL}
    END
    $$
    """,
]

# Statement-level for inserts and deletes (COPY and bulk deletes append once per statement);
# row-level for updates, so that the WHEN test drops the updates that move no figure before
# any function runs (the transition tables of a statement trigger cannot have a column list).
TRIGGERS = [
    """
    CREATE TRIGGER tickets_report_insert AFTER INSERT ON tickets
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tk_report_insert()
    """,
    f"""
    CREATE TRIGGER tickets_report_update AFTER UPDATE OF {", ".join(WATCHED)} ON tickets
    FOR EACH ROW WHEN ({" OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in WATCHED)})
    EXECUTE FUNCTION tk_report_update()
    """,
    """
    CREATE TRIGGER tickets_report_delete AFTER DELETE ON tickets
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tk_report_delete()
    """,
    """
    CREATE TRIGGER tickets_report_truncate AFTER TRUNCATE ON tickets
    FOR EACH STATEMENT EXECUTE FUNCTION tk_report_truncate()
    """,
    # Bulk loaders skip foreign-key checks with session_replication_role = replica, which
    # silences ordinary triggers too: these fire anyway (as the ticket counts' do).
    *(
        f"ALTER TABLE tickets ENABLE ALWAYS TRIGGER tickets_report_{name}"
        for name in ("insert", "update", "delete", "truncate")
    ),
]


def upgrade() -> None:
    op.create_table(
        "report_rollup",
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("team_id", sa.Text(), nullable=False),
        sa.Column("assignee_id", sa.Text(), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("met", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("finished", sa.BigInteger(), server_default="0", nullable=False),
    )
    # The figures ride along in the key's index (INCLUDE): a report is an index-only scan of
    # a few ranges, not a heap fetch per row.
    op.execute(
        "ALTER TABLE report_rollup ADD CONSTRAINT pk_report_rollup"
        " PRIMARY KEY (level, start, team_id, kind, assignee_id, bucket)"
        " INCLUDE (n, met, finished)"
    )
    op.create_table(
        "report_deltas",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("team_id", sa.Text(), nullable=False),
        sa.Column("assignee_id", sa.Text(), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("met", sa.Integer(), nullable=False),
        sa.Column("finished", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_deltas")),
    )
    # A team's backlog, counted index-only (tickets without a team are not in it).
    op.create_index(
        "ix_tickets_backlog_team_id",
        "tickets",
        ["team_id"],
        postgresql_where=sa.text(BACKLOG_WHERE),
    )
    for statement in FUNCTIONS + TRIGGERS:
        op.execute(statement)
    # The backfill: the rebuild locks writers out while it counts.
    op.execute("SELECT tk_report_rollup_rebuild()")


def downgrade() -> None:
    op.drop_index("ix_tickets_backlog_team_id", table_name="tickets")
    for name in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS tickets_report_{name} ON tickets")
        op.execute(f"DROP FUNCTION IF EXISTS tk_report_{name}()")
    op.execute("DROP FUNCTION IF EXISTS tk_report_rollup_rebuild()")
    op.execute("DROP FUNCTION IF EXISTS tk_report_bucket(interval)")
    op.drop_table("report_deltas")
    op.drop_table("report_rollup")
