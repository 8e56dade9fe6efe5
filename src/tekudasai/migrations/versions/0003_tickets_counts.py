"""ticket counts kept by triggers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

`total` in ticket lists must not cost a scan of a million rows. Statement-level triggers with
transition tables keep per-status totals for everyone ('all'), per reporter and per assignee
('' = unassigned). They work for COPY too (the bulk seed) and touch each counter row once per
statement. Writers add to the shard of their backend (pid % 16) so concurrent ticket creation
does not queue on one hot row; readers sum at most 16 rows per status.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SHARDS = 16


def _upsert(deltas_sql: str) -> str:
    # ORDER BY gives every writer the same lock order over the counter rows (no deadlocks).
    return f"""
        INSERT INTO ticket_counts AS c (scope, key, status, shard, n)
        SELECT scope, key, status, (pg_backend_pid() % {SHARDS})::smallint, sum(d)
          FROM ({deltas_sql}) AS deltas
         GROUP BY scope, key, status
        HAVING sum(d) <> 0
         ORDER BY scope, key, status
        ON CONFLICT (scope, key, status, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    """


def _rows(table: str, sign: int) -> str:
    return (
        f"SELECT 'all'::text AS scope, ''::text AS key, status, {sign} AS d FROM {table}"
        f" UNION ALL SELECT 'reporter', reporter_id, status, {sign} FROM {table}"
        f" UNION ALL SELECT 'assignee', coalesce(assignee_id, ''), status, {sign} FROM {table}"
    )


# A bulk loader may say `SET LOCAL tekudasai.skip_ticket_counts = on` and call
# tk_ticket_counts_rebuild() once at the end: one recount is cheaper than an upsert per batch.
SKIP_CHECK = (
    "IF current_setting('tekudasai.skip_ticket_counts', true) = 'on' THEN RETURN NULL; END IF;"
)

TRIGGER_SQL = [
    f"""
    CREATE FUNCTION tk_ticket_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {SKIP_CHECK}
        {_upsert(_rows("new_rows", 1))}
        RETURN NULL;
    END
    $$
    """,
    f"""
    CREATE FUNCTION tk_ticket_counts_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {SKIP_CHECK}
        {_upsert(_rows("new_rows", 1) + " UNION ALL " + _rows("old_rows", -1))}
        RETURN NULL;
    END
    $$
    """,
    f"""
    CREATE FUNCTION tk_ticket_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {SKIP_CHECK}
        {_upsert(_rows("old_rows", -1))}
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER tickets_counts_insert AFTER INSERT ON tickets
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tk_ticket_counts_insert()
    """,
    """
    CREATE TRIGGER tickets_counts_update AFTER UPDATE ON tickets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tk_ticket_counts_update()
    """,
    """
    CREATE TRIGGER tickets_counts_delete AFTER DELETE ON tickets
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tk_ticket_counts_delete()
    """,
    # Bulk loaders skip foreign-key checks with session_replication_role = replica, which
    # silences ordinary triggers too; the totals must follow every row, so these always fire.
    # (pg_restore --disable-triggers still turns them off: it restores ticket_counts itself.)
    *(
        f"ALTER TABLE tickets ENABLE ALWAYS TRIGGER tickets_counts_{name}"
        for name in ("insert", "update", "delete")
    ),
]

BACKFILL_SQL = f"""
    INSERT INTO ticket_counts (scope, key, status, shard, n)
    SELECT scope, key, status, 0, sum(d) FROM ({_rows("tickets", 1)}) AS deltas
     GROUP BY scope, key, status
"""

# For repairs (e.g. after a data-only restore that loaded both tables with triggers on):
# `SELECT tk_ticket_counts_rebuild()` recounts under a lock that keeps writers out.
REPAIR_SQL = [
    f"""
    CREATE FUNCTION tk_ticket_counts_rebuild() RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        LOCK TABLE tickets IN SHARE MODE;
        DELETE FROM ticket_counts;
        {BACKFILL_SQL};
    END
    $$
    """,
    """
    CREATE FUNCTION tk_ticket_counts_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM ticket_counts;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER tickets_counts_truncate AFTER TRUNCATE ON tickets
    FOR EACH STATEMENT EXECUTE FUNCTION tk_ticket_counts_truncate()
    """,
    "ALTER TABLE tickets ENABLE ALWAYS TRIGGER tickets_counts_truncate",
]


def upgrade() -> None:
    op.create_table(
        "ticket_counts",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", "status", "shard", name=op.f("pk_ticket_counts")),
    )
    # Lock out writers while the totals are taken, so no ticket is counted twice or missed.
    op.execute("LOCK TABLE tickets IN SHARE MODE")
    op.execute(BACKFILL_SQL)
    for statement in TRIGGER_SQL + REPAIR_SQL:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS tk_ticket_counts_rebuild()")
    for name in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS tickets_counts_{name} ON tickets")
        op.execute(f"DROP FUNCTION IF EXISTS tk_ticket_counts_{name}()")
    op.drop_table("ticket_counts")
