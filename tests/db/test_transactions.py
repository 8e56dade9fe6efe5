"""Every write route sends its statements, ORM or raw, inside one BEGIN … COMMIT.

The statements are those sent on the app's own pooled connections, in the order sent:
asyncpg's query logger sees what goes through the driver's own calls (BEGIN, COMMIT,
ROLLBACK, the raw statements of db/raw.py) and SQLAlchemy's `after_cursor_execute` sees the
ORM's prepared statements (which asyncpg does not log).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy import event, func, select, text

from tekudasai import tasks
from tekudasai.accounts import service as accounts_service
from tekudasai.core.crypto import PiiCipher
from tekudasai.core.errors import ValidationFailed
from tekudasai.db.session import Database, DbSession, get_db
from tekudasai.sla import clock as sla_clock
from tekudasai.tickets import service as tickets_service
from tekudasai.tickets.models import Ticket, TicketLog
from tests.factories import Person, make_person
from tests.tickets.conftest import GOOD_RESPONSE, make_form

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WORDS = {"BEGIN", "COMMIT", "ROLLBACK"}
PING = "SELECT 1"  # the pool's check of a connection idle for a while (db/engine.py)


@dataclass
class Wire:
    """Statements in the order the server received them, by connection."""

    sent: list[tuple[int, str]] = field(default_factory=list)

    @property
    def statements(self) -> list[str]:
        return [statement for _, statement in self.sent]

    @property
    def words(self) -> list[str]:
        return [first_word(s) for s in self.statements]

    def by_connection(self) -> list[list[str]]:
        grouped: dict[int, list[str]] = {}
        for key, statement in self.sent:
            grouped.setdefault(key, []).append(statement)
        return list(grouped.values())


def first_word(statement: str) -> str:
    return statement.split(None, 1)[0].upper().rstrip(";")


@contextmanager
def wire(database: Database) -> Iterator[Wire]:
    seen = Wire()
    watched: dict[Any, Callable[[Any], None]] = {}

    def orm(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        entry = (id(conn.connection.driver_connection), statement.strip())
        if seen.sent[-1:] != [entry]:  # executemany is logged by both
            seen.sent.append(entry)

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        if driver in watched:
            return

        def log(record: Any) -> None:
            if record.query != PING:
                seen.sent.append((id(driver), record.query.strip()))

        driver.add_query_logger(log)
        watched[driver] = log

    pool = database.engine.sync_engine.pool
    event.listen(pool, "checkout", checkout)
    event.listen(database.engine.sync_engine, "after_cursor_execute", orm)
    try:
        yield seen
    finally:
        event.remove(pool, "checkout", checkout)
        event.remove(database.engine.sync_engine, "after_cursor_execute", orm)
        for driver, log in watched.items():
            driver.remove_query_logger(log)


def _uses_db(dependant: Dependant) -> bool:
    return dependant.call is get_db or any(_uses_db(d) for d in dependant.dependencies)


def write_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every documented API route that writes and uses the database."""
    found = set()
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        if not route.path.startswith("/api/") or not _uses_db(route.dependant):
            continue
        for method in route.methods - {"GET", "HEAD", "OPTIONS"}:
            found.add((method, route.path))
    return found


def assert_one_transaction(seen: Wire, what: str) -> list[str]:
    """The request's statements: BEGIN first, COMMIT last, no other transaction control, at
    least one statement in between. A route may also read on a second connection (sign-in
    looks the account up on its own while the password is checked): in a transaction of its
    own too, and reading only."""
    committed = []
    for statements in seen.by_connection():
        words = [first_word(s) for s in statements]
        assert words[0] == "BEGIN" and words[-1] in {"COMMIT", "ROLLBACK"}, (what, statements)
        assert len(words) > 2 and not WORDS & set(words[1:-1]), (what, statements)
        if words[-1] == "COMMIT":
            committed.append(statements[1:-1])
        else:
            assert set(words[1:-1]) <= {"SELECT"}, (what, statements)
    assert len(committed) == 1, (what, seen.statements)
    return committed[0]


Call = Callable[[], Awaitable[httpx.Response]]


async def test_every_write_route_runs_in_one_transaction(
    app: FastAPI, client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    admin = await make_person(database, cipher, role="admin")
    agent = await make_person(database, cipher, role="agent")
    customer = await make_person(database, cipher)
    target = await make_person(database, cipher)
    form = await make_form(database, form_id="it-support")
    filed = await client.post(
        "/api/tickets/my",
        json={"formId": form.id, "summary": "First", "formResponse": GOOD_RESPONSE},
        headers=customer.auth,
    )
    ticket_id = filed.json()["data"]["id"]
    async with database.sessionmaker() as db, db.begin():
        reset_token = await accounts_service.issue_token(
            db, user_id=target.user.id, purpose=accounts_service.RESET_PASSWORD
        )
    form_body = {
        "name": "Laptop",
        "description": "",
        "disabled": True,
        "elements": [
            {"id": "a", "type": "text-field", "name": "model", "label": "Model"},
        ],
    }
    made: dict[str, Any] = {}

    async def create_form() -> httpx.Response:
        response = await client.post("/api/forms", json=form_body, headers=admin.auth)
        made["form"] = response.json()["data"]["id"]
        return response

    async def signup() -> httpx.Response:
        body = {"name": "New Person", "email": "new@example.test", "password": "long-enough-1"}
        return await client.post("/api/auth/signup", json=body)

    def bearer(person: Person) -> dict[str, str]:
        return person.auth

    ticket = f"/api/tickets/{ticket_id}"
    mine = f"/api/tickets/my/{ticket_id}"
    cases: list[tuple[str, str, Call]] = [
        ("POST", "/api/auth/signup", signup),
        (
            "POST",
            "/api/auth/signin",
            lambda: client.post(
                "/api/auth/signin", json={"email": customer.email, "password": customer.password}
            ),
        ),
        (
            "POST",
            "/api/auth/verify-request",
            lambda: client.post("/api/auth/verify-request", json={"email": customer.email}),
        ),
        (
            "POST",
            "/api/auth/reset-password",
            lambda: client.post(
                "/api/auth/reset-password",
                json={"token": reset_token, "newPassword": "another-long-one"},
            ),
        ),
        (
            "POST",
            "/api/auth/reset-password-request",
            lambda: client.post("/api/auth/reset-password-request", json={"email": target.email}),
        ),
        (
            "POST",
            "/api/auth/admin/set-role",
            lambda: client.post(
                "/api/auth/admin/set-role",
                json={"userId": target.user.id, "role": "agent"},
                headers=bearer(admin),
            ),
        ),
        (
            "POST",
            "/api/auth/admin/ban-user",
            lambda: client.post(
                "/api/auth/admin/ban-user", json={"userId": target.user.id}, headers=bearer(admin)
            ),
        ),
        (
            "POST",
            "/api/auth/admin/unban-user",
            lambda: client.post(
                "/api/auth/admin/unban-user",
                json={"userId": target.user.id},
                headers=bearer(admin),
            ),
        ),
        ("POST", "/api/forms", create_form),
        (
            "PATCH",
            "/api/forms/{form_id}",
            lambda: client.patch(
                f"/api/forms/{made['form']}", json={"name": "Laptops"}, headers=admin.auth
            ),
        ),
        (
            "DELETE",
            "/api/forms/{form_id}",
            lambda: client.delete(f"/api/forms/{made['form']}", headers=admin.auth),
        ),
        (
            "POST",
            "/api/forms/enabled/{form_id}/validate",
            lambda: client.post(
                f"/api/forms/enabled/{form.id}/validate",
                json={"formResponse": GOOD_RESPONSE},
                headers=customer.auth,
            ),
        ),
        (
            "POST",
            "/api/uploads",
            lambda: client.post(
                "/api/uploads",
                files={"file": ("notes.txt", b"plain words\n", "text/plain")},
                headers=customer.auth,
            ),
        ),
        (
            "POST",
            "/api/tickets/my",
            lambda: client.post(
                "/api/tickets/my",
                json={"formId": form.id, "summary": "Second", "formResponse": GOOD_RESPONSE},
                headers=customer.auth,
            ),
        ),
        (
            "POST",
            "/api/tickets/my/{id}/comments",
            lambda: client.post(f"{mine}/comments", json={"body": "Hi"}, headers=customer.auth),
        ),
        (
            "POST",
            "/api/tickets/{id}/open-form",
            lambda: client.post(f"{ticket}/open-form", headers=agent.auth),
        ),
        (
            "PATCH",
            "/api/tickets/my/{id}",
            lambda: client.patch(mine, json={"formResponse": GOOD_RESPONSE}, headers=customer.auth),
        ),
        (
            "PATCH",
            "/api/tickets/{id}",
            lambda: client.patch(ticket, json={"status": "in_progress"}, headers=agent.auth),
        ),
        (
            "POST",
            "/api/tickets/{id}/comments",
            lambda: client.post(
                f"{ticket}/comments", json={"body": "Note", "internal": True}, headers=agent.auth
            ),
        ),
        (
            "POST",
            "/api/tickets/{id}/assign-toggle",
            lambda: client.post(f"{ticket}/assign-toggle", headers=agent.auth),
        ),
        (
            "POST",
            "/api/tickets/{id}/assign",
            lambda: client.post(
                f"{ticket}/assign", json={"assigneeId": admin.user.id}, headers=agent.auth
            ),
        ),
        ("DELETE", "/api/tickets/{id}", lambda: client.delete(ticket, headers=agent.auth)),
        (
            "POST",
            "/api/auth/signout-all",
            lambda: client.post("/api/auth/signout-all", headers=agent.auth),
        ),
        ("POST", "/api/auth/signout", lambda: client.post("/api/auth/signout", headers=admin.auth)),
    ]
    missing = write_routes(app) - {(method, path) for method, path, _ in cases}
    assert not missing, f"write routes without a transaction check here: {sorted(missing)}"
    for method, path, call in cases:
        with wire(database) as seen:
            response = await call()
        assert response.status_code == 200, (method, path, response.text)
        assert_one_transaction(seen, f"{method} {path}")


async def test_filing_a_ticket_under_an_sla_policy_writes_its_clock_in_the_insert(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    """With the policies cached, the clock is computed before the INSERT and written by it,
    with its timer job: no UPDATE of the new row (which touched every index of tickets)."""
    tasks.install_reactors()
    async with database.sessionmaker() as db, db.begin():
        await db.execute(
            text(
                "INSERT INTO business_calendars (id, name, timezone, hours, holidays)"
                " VALUES ('always', 'Always', 'UTC', CAST(:hours AS jsonb), '[]')"
            ),
            {"hours": json.dumps({d: [["00:00", "24:00"]] for d in DAYS})},
        )
        await db.execute(
            text(
                "INSERT INTO sla_policies (id, name, conditions, calendar_id,"
                " first_response_minutes, resolution_minutes)"
                " VALUES ('all', 'All', '{}', 'always', 30, 240)"
            )
        )
    customer = await make_person(database, cipher)
    form = await make_form(database, form_id="it-support")
    body = {"formId": form.id, "summary": "Printer", "formResponse": GOOD_RESPONSE}
    assert (await client.post("/api/tickets/my", json=body, headers=customer.auth)).is_success
    with wire(database) as seen:  # the policies are cached now
        response = await client.post("/api/tickets/my", json=body, headers=customer.auth)
    assert response.status_code == 200
    inner = assert_one_transaction(seen, "POST /api/tickets/my")
    assert not any(s.startswith("UPDATE") or "UPDATE tickets" in s for s in inner), inner
    ticket_id = response.json()["data"]["id"]
    assert response.json()["data"]["sla"]["policyId"] == "all"
    async with database.sessionmaker() as db:
        row = (
            await db.execute(
                text(
                    "SELECT created_at, updated_at, sla_started_at,"
                    " sla_first_response_due_at AS fr, sla_resolution_due_at AS res,"
                    " sla_due_at, sla_state FROM tickets"
                    " WHERE id = :id"
                ),
                {"id": ticket_id},
            )
        ).one()
        jobs = await db.scalar(
            text("SELECT count(*) FROM jobs WHERE name = 'sla.check' AND args->>'ticketId' = :id"),
            {"id": str(ticket_id)},
        )
    assert row.sla_started_at == row.created_at == row.updated_at
    assert row.fr == row.created_at + timedelta(minutes=30) == row.sla_due_at
    assert row.res == row.created_at + timedelta(minutes=240)
    assert row.sla_state == "running"
    assert jobs == 1


async def test_filing_a_ticket_adds_only_begin_and_commit(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    """The hot write sends the session's read, then the INSERT with its log row and upload
    links, guarded by the form's version as this process last read it (no read of the version
    first), and nothing for the reactors with no policy or rule matching: the SLA clock's check
    that its cached policies are current rides in the INSERT (a creation probe); at most once a
    second the automations check theirs. The new ticket is not read back. The transaction adds
    BEGIN and COMMIT."""
    customer = await make_person(database, cipher)
    form = await make_form(database, form_id="it-support")
    body = {"formId": form.id, "summary": "Printer", "formResponse": GOOD_RESPONSE}
    assert (await client.post("/api/tickets/my", json=body, headers=customer.auth)).is_success
    with wire(database) as seen:  # the form's plan is cached now, as under load
        response = await client.post("/api/tickets/my", json=body, headers=customer.auth)
    assert response.status_code == 200
    inner = assert_one_transaction(seen, "POST /api/tickets/my")
    assert inner[1] == tickets_service.create_statement(guarded=True).sql.strip(), inner
    reactors = [s for s in inner[2:] if "FROM automation_generation" not in s]
    assert reactors == [], inner
    assert sla_clock.FINGERPRINT_PROBE in inner[1], inner
    assert not any("FROM tickets" in s for s in inner[2:]), inner


@pytest.fixture
def failing_route(app: FastAPI, database: Database) -> str:
    """A route that files a ticket through the real service and then fails, as any later step
    of a request might."""
    path = "/tests/file-then-fail"

    async def file_then_fail(db: DbSession, reporter_id: str) -> None:
        await tickets_service.create_ticket(
            db,
            reporter_id=reporter_id,
            form_id="it-support",
            summary="Never stored",
            form_response=GOOD_RESPONSE,
        )
        raise ValidationFailed("a later step failed")

    app.add_api_route(path, file_then_fail, methods=["POST"])
    return path


async def test_a_failing_write_leaves_neither_the_ticket_nor_its_log_row(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher, failing_route: str
) -> None:
    person = await make_person(database, cipher)
    await make_form(database, form_id="it-support")
    async with database.sessionmaker() as db, db.begin():
        # The plan lookup reads through the ORM once per process: cached, as under load.
        await tickets_service.enabled_form_plan(db, form_id="it-support")
    with wire(database) as seen:
        response = await client.post(failing_route, params={"reporter_id": person.user.id})
    assert response.status_code == 400
    [statements] = seen.by_connection()
    assert first_word(statements[0]) == "BEGIN", statements
    assert first_word(statements[-1]) == "ROLLBACK", statements
    assert tickets_service.create_statement(guarded=True).sql.strip() in statements
    async with database.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(Ticket)) == 0
        assert await db.scalar(select(func.count()).select_from(TicketLog)) == 0


async def test_a_raw_statement_first_in_a_session_joins_its_transaction(
    database: Database, cipher: PiiCipher
) -> None:
    """The ticket INSERT is sent straight to the driver before any ORM statement: a rollback
    of the session still takes it back (it used to commit on its own)."""
    person = await make_person(database, cipher)
    await make_form(database, form_id="it-support")
    async with database.sessionmaker() as db, db.begin():
        # The plan lookup reads through the ORM once per process: make it cached first.
        await tickets_service.enabled_form_plan(db, form_id="it-support")
    with pytest.raises(RuntimeError):
        async with database.sessionmaker() as db, db.begin():
            await tickets_service.create_ticket(
                db,
                reporter_id=person.user.id,
                form_id="it-support",
                summary="Rolled back",
                form_response=GOOD_RESPONSE,
            )
            raise RuntimeError("a later step failed")
    async with database.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(Ticket)) == 0
        assert await db.scalar(select(func.count()).select_from(TicketLog)) == 0
