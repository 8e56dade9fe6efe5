"""The per-request session: read-only routes skip the transaction, without losing writes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import event, select, update

from tekudasai.accounts.models import Session
from tekudasai.core.crypto import PiiCipher, hash_token
from tekudasai.db.session import Database
from tests.factories import make_person


@contextmanager
def checkouts(database: Database, then: Callable[[Any], None] | None = None) -> Iterator[list[Any]]:
    """The driver connection of every pool checkout, in order (each handed to `then`)."""
    seen: list[Any] = []

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        seen.append(driver)
        if then is not None:
            then(driver)

    pool = database.engine.sync_engine.pool
    event.listen(pool, "checkout", checkout)
    try:
        yield seen
    finally:
        event.remove(pool, "checkout", checkout)


@contextmanager
def transactions(database: Database) -> Iterator[list[str]]:
    """BEGIN / COMMIT / ROLLBACK as sent on the wire (asyncpg's query logger)."""
    seen: list[str] = []

    def log(record: Any) -> None:
        word = record.query.strip().rstrip(";").split(" ")[0].upper()
        if word in {"BEGIN", "COMMIT", "ROLLBACK"}:
            seen.append(word)

    with checkouts(database, then=lambda driver: driver.add_query_logger(log)) as drivers:
        try:
            yield seen
        finally:
            for driver in drivers:
                driver.remove_query_logger(log)


async def test_read_only_routes_run_without_a_transaction(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    with transactions(database) as seen:
        response = await client.get("/api/tickets/my", headers=person.auth)
    assert response.status_code == 200
    assert seen == []
    with transactions(database) as seen:
        response = await client.post("/api/auth/signout", headers=person.auth)
    assert response.status_code == 200
    assert seen == ["BEGIN", "COMMIT"]  # other routes: one transaction


async def test_a_read_only_route_still_stores_the_sliding_renewal(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    soon = datetime.now(UTC) + timedelta(days=2)
    token_hash = hash_token(person.token)
    async with database.sessionmaker() as db, db.begin():
        await db.execute(
            update(Session).where(Session.token_hash == token_hash).values(expires_at=soon)
        )
    response = await client.get("/api/tickets/my", headers=person.auth)
    assert response.status_code == 200
    async with database.sessionmaker() as db:
        stored = await db.scalar(select(Session.expires_at).where(Session.token_hash == token_hash))
    assert stored is not None and stored > datetime.now(UTC) + timedelta(days=6)


async def test_a_dead_pooled_connection_is_replaced_at_checkout(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    assert (await client.get("/api/tickets/my", headers=person.auth)).status_code == 200
    # Kill every backend of this database except ours: pooled connections are now dead.
    async with database.engine.connect() as conn:
        await conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    for _ in range(3):
        assert (await client.get("/api/tickets/my", headers=person.auth)).status_code == 200


async def test_an_orm_statement_on_a_read_only_route_shares_its_one_connection(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    # The logs route checks the ticket through the ORM, after the raw principal lookup.
    with checkouts(database) as used, transactions(database) as seen:
        response = await client.get("/api/tickets/my/999999/logs", headers=person.auth)
    assert response.status_code == 404
    assert len(used) == 1
    assert seen == []


async def test_a_read_only_request_gives_its_connection_back_out_of_autocommit(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    with checkouts(database) as used:
        assert (await client.get("/api/tickets/my", headers=person.auth)).status_code == 200
        # The pool is last in, first out: the next session gets that very connection.
        with transactions(database) as seen:
            async with database.sessionmaker() as db, db.begin():
                await db.execute(select(1))
    assert len(used) == 2 and used[0] is used[1]
    assert seen == ["BEGIN", "COMMIT"]
