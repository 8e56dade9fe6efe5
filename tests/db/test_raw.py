"""Statements sent straight to asyncpg: same connection and transaction, timed, values checked."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from sqlalchemy import Boolean, Text, bindparam, exc, select, text

from tekudasai.accounts.models import User
from tekudasai.db import raw
from tekudasai.db.raw import RawStatement
from tekudasai.db.session import Database
from tekudasai.forms.models import Form


async def test_a_raw_statement_sees_the_sessions_own_uncommitted_work(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, list[Any]]] = []
    monkeypatch.setattr(raw, "observer", lambda sql, values, _s: seen.append((sql, values)))
    by_id = RawStatement(select(Form.id, Form.name).where(Form.id == bindparam("form_id")))
    async with database.sessionmaker() as db:
        async with db.begin():
            await db.execute(
                text("INSERT INTO forms (id, name, elements) VALUES ('f1', 'First', '[]')")
            )
            row = await by_id.fetchrow(db, form_id="f1")
            assert row is not None and (row["id"], row["name"]) == ("f1", "First")
            await db.rollback()
        assert await by_id.fetchrow(db, form_id="f1") is None  # rolled back with the session
    assert seen[0] == (by_id.sql, ["f1"])
    assert "$1" in by_id.sql


async def test_values_needing_conversion_are_refused() -> None:
    with pytest.raises(TypeError):
        RawStatement(select(User.id).where(User.banned == bindparam("banned", type_=Boolean)))


async def test_errors_come_out_as_sqlalchemys_like_any_other_statement(
    database: Database,
) -> None:
    """One exception family whichever path a statement took: DBAPIError wrapping the driver's."""
    duplicate = RawStatement(
        text("INSERT INTO forms (id, name, elements) VALUES (:form_id, 'Twice', '[]')").bindparams(
            bindparam("form_id", type_=Text)
        )
    )
    async with database.sessionmaker() as db, db.begin():
        await duplicate.fetch(db, form_id="f1")
        with pytest.raises(exc.IntegrityError) as caught:
            await duplicate.fetch(db, form_id="f1")
        await db.rollback()
    assert getattr(caught.value.orig, "sqlstate", None) == "23505"
    assert isinstance(caught.value.orig.__cause__, asyncpg.UniqueViolationError)


async def test_a_raw_statement_on_a_read_only_session_begins_nothing(database: Database) -> None:
    by_id = RawStatement(select(Form.id).where(Form.id == bindparam("form_id", type_=Text)))
    async with database.sessionmaker() as db:
        await db.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        await by_id.fetchrow(db, form_id="f1")
        adapted = (await db.connection()).sync_connection.connection.dbapi_connection  # type: ignore[union-attr]
        assert adapted._transaction is None
