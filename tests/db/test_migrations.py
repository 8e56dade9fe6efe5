"""Every revision walks up, down and up again; the models and the migrations agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from tekudasai.db import migrate
from tekudasai.db.embedded import EmbeddedPostgres
from tekudasai.db.session import Database
from tekudasai.migrations.models import Base
from tests.conftest import drop_database, make_settings


async def _empty_database(server: EmbeddedPostgres, name: str) -> str:
    conn = await asyncpg.connect(server.url("postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server.url(name)


async def _tables(database: Database) -> set[str]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )
        return {row[0] for row in rows}


async def test_every_revision_upgrades_downgrades_and_upgrades_again(
    pg_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    url = await _empty_database(pg_server, "walk_revisions")
    database = Database.connect(url, make_settings(url, tmp_path), pool_size=1)
    try:
        script = ScriptDirectory.from_config(migrate.alembic_config())
        revisions = [rev.revision for rev in reversed(list(script.walk_revisions()))]
        assert revisions, "no migrations found"
        for revision in revisions:
            await migrate.upgrade(database.engine, revision)
            assert await migrate.current_revision(database.engine) == revision
        assert {"users", "tickets", "forms", "ticket_logs"} <= await _tables(database)
        for revision in reversed(revisions):
            await migrate.downgrade(database.engine, "-1")
            assert await migrate.current_revision(database.engine) != revision
        assert await _tables(database) <= {"alembic_version"}
        await migrate.upgrade(database.engine, "head")
        assert await migrate.current_revision(database.engine) == migrate.head_revision()
    finally:
        await database.dispose()
        await drop_database(pg_server, "walk_revisions")


def test_head_revision_read_from_the_scripts_is_alembics() -> None:
    """`head_revision` parses the scripts itself (web workers do not load Alembic for it)."""
    heads = ScriptDirectory.from_config(migrate.alembic_config()).get_heads()
    assert [migrate.head_revision()] == heads


async def test_models_and_migrations_do_not_drift(database: Database) -> None:
    def diff(sync_conn):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(
            sync_conn, opts={"compare_type": True, "include_object": _ours}
        )
        return compare_metadata(context, Base.metadata)

    async with database.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == [], f"models and migrations disagree: {changes}"


def _ours(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    return not (type_ == "table" and name in {"alembic_version", "pg_stat_statements"})


async def test_every_foreign_key_is_indexed(database: Database) -> None:
    query = text(
        """
        SELECT c.conrelid::regclass::text, c.conname
          FROM pg_constraint c
         WHERE c.contype = 'f'
           AND NOT EXISTS (
               SELECT 1 FROM pg_index i
                WHERE i.indrelid = c.conrelid
                  AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] = c.conkey
           )
        """
    )
    async with database.engine.connect() as conn:
        unindexed = (await conn.execute(query)).all()
    assert unindexed == []


async def test_database_enforces_constraints(database: Database) -> None:
    async with database.engine.connect() as conn:
        checks = {
            row[0]
            for row in await conn.execute(
                text("SELECT conname FROM pg_constraint WHERE contype = 'c'")
            )
        }
    assert {"ck_users_role", "ck_tickets_status", "ck_ticket_logs_action_type"} <= checks


# -- 0006: every input element has a key in a ticket's stored answers ------------------------

_FORM_V1 = [
    {"type": "text-panel", "id": "p", "name": "", "content": "Read me"},
    {"type": "text-field", "id": "a", "name": "subject", "label": "Subject", "required": True},
    {"type": "textarea", "id": "b", "name": "details", "label": "Details", "required": False},
    {"type": "file-upload", "id": "c", "name": "screenshot", "label": "Shot", "required": False},
]
# Version 2 adds an element: a ticket filed with version 1 must not get its key.
_FORM_V2 = [*_FORM_V1, {"type": "number", "id": "d", "name": "seats", "label": "Seats"}]


async def test_0006_fills_missing_answers_from_the_ticket_form_version(
    pg_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    """Rows in the pre-0006 shape (unanswered elements left out) get `""` for every missing
    input of the version they were filed with; present answers are untouched; downgrade
    drops the blanks again."""
    url = await _empty_database(pg_server, "fill_answers")
    database = Database.connect(url, make_settings(url, tmp_path), pool_size=1)
    try:
        await migrate.upgrade(database.engine, "0004")
        async with database.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO users (id, name_ciphertext, email_ciphertext, email_index,"
                    " name_index, pii_key_id) VALUES ('u1', 'n', 'e', 'ei', 'ni', 1)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO forms (id, creator_id, name, elements, version)"
                    " VALUES ('f1', 'u1', 'Form', CAST(:v2 AS jsonb), 2)"
                ),
                {"v2": json.dumps(_FORM_V2)},
            )
            for version, elements in ((1, _FORM_V1), (2, _FORM_V2)):
                await conn.execute(
                    text(
                        "INSERT INTO form_versions (form_id, version, name, elements)"
                        " VALUES ('f1', :version, 'Form', CAST(:elements AS jsonb))"
                    ),
                    {"version": version, "elements": json.dumps(elements)},
                )
            responses = {
                1: (1, {"subject": "Printer"}),
                2: (2, {"subject": "Laptop", "details": "Broken", "seats": 3}),
                3: (1, {"subject": "x", "details": "y", "screenshot": {"filename": "abc"}}),
            }
            for ticket_id, (version, response) in responses.items():
                await conn.execute(
                    text(
                        "INSERT INTO tickets (id, reporter_id, summary, form_id, form_version,"
                        " form_response) VALUES (:id, 'u1', 's', 'f1', :version,"
                        " CAST(:response AS jsonb))"
                    ),
                    {"id": ticket_id, "version": version, "response": json.dumps(response)},
                )

        async def stored() -> dict[int, dict[str, object]]:
            async with database.engine.connect() as conn:
                rows = await conn.execute(text("SELECT id, form_response FROM tickets"))
                return {row[0]: row[1] for row in rows}

        await migrate.upgrade(database.engine, "0006")
        assert await stored() == {
            1: {"subject": "Printer", "details": "", "screenshot": ""},
            2: {"subject": "Laptop", "details": "Broken", "screenshot": "", "seats": 3},
            3: {"subject": "x", "details": "y", "screenshot": {"filename": "abc"}},
        }

        await migrate.downgrade(database.engine, "0004")
        assert await stored() == {t: response for t, (_, response) in responses.items()}
    finally:
        await database.dispose()
        await drop_database(pg_server, "fill_answers")


# -- 0021: the reports rollup, backfilled from the tickets there are ---------------------------


async def test_0021_backfills_the_reports_rollup_and_downgrades(
    pg_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    """Tickets filed before 0021 are in the rollup it creates (equal to a fresh computation
    from the ticket columns); the triggers keep it after; downgrade removes tables, triggers
    and functions, and tickets can still be written."""
    from tests.reports.test_rollup import assert_exact, expected

    url = await _empty_database(pg_server, "reports_rollup")
    database = Database.connect(url, make_settings(url, tmp_path), pool_size=1)
    insert = text(
        "INSERT INTO tickets (reporter_id, summary, form_id, form_version, form_response,"
        " status, created_at, updated_at, first_responded_at, resolved_at, assignee_id,"
        " team_id, sla_state) VALUES ('u1', 's', 'f1', 1, '{}', :status,"
        " now() - :age * interval '1 day', now(), now() - :age * interval '1 day'"
        " + :first * interval '1 minute', :resolved, :assignee, :team, :sla)"
    )
    try:
        await migrate.upgrade(database.engine, "0020")
        async with database.engine.begin() as conn:
            for user, role in (("u1", "user"), ("a1", "agent"), ("a2", "agent")):
                await conn.execute(
                    text(
                        "INSERT INTO users (id, name_ciphertext, email_ciphertext, email_index,"
                        " name_index, pii_key_id, role) VALUES (:id, 'n', 'e', :index, 'ni', 1, :r)"
                    ),
                    {"id": user, "index": user.encode(), "r": role},
                )
            await conn.execute(text("INSERT INTO teams (id, name) VALUES ('t1', 'Team')"))
            await conn.execute(
                text(
                    "INSERT INTO forms (id, creator_id, name, elements, version)"
                    " VALUES ('f1', 'u1', 'Form', '[]', 1)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO form_versions (form_id, version, name, elements)"
                    " VALUES ('f1', 1, 'Form', '[]')"
                )
            )
            for n in range(40):
                resolved = datetime.now(UTC) - timedelta(days=n % 7) if n % 3 == 0 else None
                await conn.execute(
                    insert,
                    {
                        "status": "resolved" if resolved else "open",
                        "age": n % 11 + 3,
                        "first": n * 7 if n % 4 else None,
                        "resolved": resolved,
                        "assignee": ("a1", "a2", None)[n % 3],
                        "team": "t1" if n % 2 else None,
                        "sla": ("met", "breached", "running", None)[n % 4],
                    },
                )
        await migrate.upgrade(database.engine, "0021")
        want = (await expected(database))[(True, True)][0]
        assert sum(n for (_, kind, *_), (n, _, _) in want.items() if kind == 1) == 40
        await assert_exact(database)
        async with database.engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM report_deltas"))).scalar() == 0
        async with database.engine.begin() as conn:  # the triggers work from here on
            await conn.execute(text("UPDATE tickets SET assignee_id = 'a2' WHERE id % 5 = 0"))
        await assert_exact(database)

        await migrate.downgrade(database.engine, "0020")
        assert not {"report_rollup", "report_deltas"} & await _tables(database)
        async with database.engine.begin() as conn:
            leftovers = await conn.execute(
                text(
                    "SELECT proname FROM pg_proc WHERE proname LIKE 'tk_report%'"
                    " UNION ALL SELECT tgname FROM pg_trigger WHERE tgname LIKE '%report%'"
                )
            )
            assert leftovers.all() == []
            await conn.execute(
                insert,
                {"status": "open", "age": 1, "first": None, "resolved": None, "assignee": None,
                 "team": None, "sla": None},
            )  # fmt: skip
        await migrate.upgrade(database.engine, "0021")
        await assert_exact(database)
    finally:
        await database.dispose()
        await drop_database(pg_server, "reports_rollup")
