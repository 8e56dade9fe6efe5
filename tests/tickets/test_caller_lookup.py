"""My tickets and my ticket look the caller up in the statement that reads them
(accounts/joined.py): one statement, and the same answers as a route with `CurrentUser`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select, update

from tekudasai.accounts.dependencies import _principal_statement
from tekudasai.accounts.models import Session, User
from tekudasai.core.crypto import hash_token
from tekudasai.db import raw
from tekudasai.db.session import Database
from tests.accounts.test_tokens import bearer, create
from tests.factories import Person

MY_READS = ("/api/tickets/my", "/api/tickets/my/{id}")


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The SQL of every statement sent straight to the driver (db/raw.py), in order."""
    sent: list[str] = []
    metrics = raw.observer

    def observe(sql: str, values: list[Any], seconds: float) -> None:
        sent.append(sql)
        if metrics is not None:
            metrics(sql, values, seconds)

    monkeypatch.setattr(raw, "observer", observe)
    yield sent


def _paths(ticket: dict[str, Any]) -> list[str]:
    return [path.format(id=ticket["id"]) for path in MY_READS]


async def test_my_reads_send_the_lookup_with_the_read(
    client: httpx.AsyncClient, reporter: Person, ticket: dict[str, Any], statements: list[str]
) -> None:
    for path in _paths(ticket):
        await client.get(path, headers=reporter.auth)  # the form's view is cached by now
        statements.clear()
        answer = await client.get(path, headers=reporter.auth)
        assert answer.status_code == 200, answer.text
        assert len(statements) == 1 and statements[0].startswith("WITH caller AS")
        assert _principal_statement().sql not in statements
    listed = (await client.get("/api/tickets/my", headers=reporter.auth)).json()
    assert [t["id"] for t in listed["data"]] == [ticket["id"]]
    assert listed["meta"]["pagination"]["total"] == 1
    one = (await client.get(f"/api/tickets/my/{ticket['id']}", headers=reporter.auth)).json()
    assert one["data"]["id"] == ticket["id"] and one["data"]["form"]["id"] == ticket["formId"]


async def test_others_see_none_of_it_and_empty_pages_still_count(
    client: httpx.AsyncClient, reporter: Person, other: Person, ticket: dict[str, Any]
) -> None:
    theirs = (await client.get("/api/tickets/my", headers=other.auth)).json()
    assert theirs["data"] == [] and theirs["meta"]["pagination"]["total"] == 0
    mine = await client.get(f"/api/tickets/my/{ticket['id']}", headers=other.auth)
    assert mine.status_code == 404 and mine.json()["code"] == "NOT_FOUND"
    assert (await client.get("/api/tickets/my/99999", headers=reporter.auth)).status_code == 404
    # Past the last page the total is counted apart, for the caller the lookup found.
    beyond = (await client.get("/api/tickets/my?page=3", headers=reporter.auth)).json()
    assert beyond["data"] == [] and beyond["meta"]["pagination"]["total"] == 1


async def _refused_everywhere(client: httpx.AsyncClient, person: Person, ticket: Any) -> None:
    for path in _paths(ticket):
        answer = await client.get(path, headers=person.auth)
        assert answer.status_code == 401 and answer.json()["code"] == "UNAUTHORIZED", path


@pytest.mark.parametrize("how", ["signed out", "expired", "banned"])
async def test_a_revoked_caller_is_refused_at_once(
    client: httpx.AsyncClient,
    database: Database,
    reporter: Person,
    ticket: dict[str, Any],
    how: str,
) -> None:
    for path in _paths(ticket):
        assert (await client.get(path, headers=reporter.auth)).status_code == 200
    async with database.sessionmaker() as db, db.begin():
        mine = Session.user_id == reporter.user.id
        if how == "signed out":
            await db.execute(delete(Session).where(mine))
        elif how == "expired":
            past = datetime.now(UTC) - timedelta(seconds=1)
            await db.execute(update(Session).where(mine).values(expires_at=past))
        else:
            await db.execute(update(User).where(User.id == reporter.user.id).values(banned=True))
    await _refused_everywhere(client, reporter, ticket)


async def test_a_half_used_session_is_renewed_by_the_joined_read(
    client: httpx.AsyncClient, database: Database, reporter: Person, ticket: dict[str, Any]
) -> None:
    soon = datetime.now(UTC) + timedelta(days=2)
    token_hash = Session.token_hash == hash_token(reporter.token)
    async with database.sessionmaker() as db, db.begin():
        await db.execute(update(Session).where(token_hash).values(expires_at=soon))
    answer = await client.get("/api/tickets/my", headers=reporter.auth)
    assert answer.status_code == 200 and len(answer.json()["data"]) == 1
    async with database.sessionmaker() as db:
        expires_at = await db.scalar(select(Session.expires_at).where(token_hash))
    assert expires_at is not None and expires_at > datetime.now(UTC) + timedelta(days=6)


async def test_validation_errors_come_after_the_callers_refusal(
    client: httpx.AsyncClient, reporter: Person, ticket: dict[str, Any]
) -> None:
    stranger = {"Authorization": "Bearer not-a-session-token"}
    for bad in ("/api/tickets/my?page=0", "/api/tickets/my?limit=abc", "/api/tickets/my/abc"):
        for headers in ({}, stranger):
            answer = await client.get(bad, headers=headers)
            assert answer.status_code == 401 and answer.json()["code"] == "UNAUTHORIZED", bad
        answer = await client.get(bad, headers=reporter.auth)
        assert answer.status_code == 400 and answer.json()["code"] == "VALIDATION_ERROR", bad


async def test_a_personal_access_token_reads_the_usual_way(
    client: httpx.AsyncClient,
    reporter: Person,
    ticket: dict[str, Any],
    statements: list[str],
) -> None:
    readable = (await create(client, reporter, ["tickets:read"])).json()["token"]
    writeonly = (await create(client, reporter, ["tickets:write"])).json()["token"]
    for path in _paths(ticket):
        statements.clear()
        answer = await client.get(path, headers=bearer(readable))
        assert answer.status_code == 200, answer.text
        assert not any(sql.startswith("WITH caller AS") for sql in statements)
        refused = await client.get(path, headers=bearer(writeonly))
        assert refused.status_code == 403 and refused.json()["code"] == "INSUFFICIENT_SCOPE"
    listed = (await client.get("/api/tickets/my", headers=bearer(readable))).json()
    assert [t["id"] for t in listed["data"]] == [ticket["id"]]
    # A token without the scope hears 403 before a bad query's 400, as before.
    for bad in ("/api/tickets/my?page=0", "/api/tickets/my/abc"):
        refused = await client.get(bad, headers=bearer(writeonly))
        assert refused.status_code == 403 and refused.json()["code"] == "INSUFFICIENT_SCOPE"
        invalid = await client.get(bad, headers=bearer(readable))
        assert invalid.status_code == 400 and invalid.json()["code"] == "VALIDATION_ERROR"
