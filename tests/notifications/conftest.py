"""Notification fixtures: a real SMTP server (aiosmtpd) on loopback that the queue sends to,
people of each role, and the worker that runs dispatch and mail jobs."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tekudasai.jobs.worker import Backoff, Worker
from tekudasai.tasks import TASKS
from tests.conftest import make_settings
from tests.factories import Person, make_person
from tests.jobs.conftest import Inbox, free_port, start_smtp
from tests.tickets.conftest import (  # noqa: F401 - fixtures
    FileTicket,
    agent,
    file_ticket,
    form,
    reporter,
)

SUPPORT = "Help Desk <help@desk.example.com>"


class Mailbox:
    """What the SMTP server received, parsed."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    @property
    def messages(self) -> list[EmailMessage]:
        return [
            email.message_from_bytes(e.original_content or b"", policy=email.policy.default)  # type: ignore[misc]
            for e in self.inbox.messages
        ]

    def to(self, address: str) -> list[EmailMessage]:
        return [
            m
            for e, m in zip(self.inbox.messages, self.messages, strict=True)
            if e.rcpt_tos == [address]
        ]

    def recipients(self) -> list[str]:
        return [r for e in self.inbox.messages for r in e.rcpt_tos]


@pytest.fixture
async def smtp_port() -> int:
    return free_port()


@pytest.fixture
async def mailbox(smtp_port: int) -> AsyncIterator[Mailbox]:
    inbox = Inbox()
    server = await start_smtp(smtp_port, inbox)
    yield Mailbox(inbox)
    server.close()
    await server.wait_closed()


@pytest.fixture
def settings(db_url: str, tmp_path: Path, smtp_port: int) -> Settings:
    return make_settings(
        db_url,
        tmp_path / "data",
        TK_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
        TK_SUPPORT_ADDRESS=SUPPORT,
    )


@pytest.fixture
def worker(database: Database, settings: Settings) -> Worker:
    return Worker(database, settings, TASKS, backoff=Backoff(base=0.2, cap=0.5))


@pytest.fixture
async def other_agent(database: Database, cipher: PiiCipher) -> Person:
    return await make_person(database, cipher, role="agent")


@pytest.fixture
async def watcher(database: Database, cipher: PiiCipher, client: httpx.AsyncClient) -> Person:
    """An agent who opted in to every new ticket."""
    person = await make_person(database, cipher, role="agent")
    response = await client.patch(
        "/api/me/notifications", json={"email": {"newTicketForAgents": True}}, headers=person.auth
    )
    assert response.status_code == 200, response.text
    return person


async def feed_of(client: httpx.AsyncClient, person: Person) -> list[dict[str, Any]]:
    response = await client.get("/api/me/notifications/feed", headers=person.auth)
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def rows(database: Database, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with database.engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(text(sql), params)]


def parts(message: EmailMessage) -> tuple[str, str]:
    """(text, html) of a notification mail."""
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    text, markup = plain.get_content(), html.get_content()  # type: ignore[attr-defined]
    return text.replace("\r\n", "\n"), markup.replace("\r\n", "\n")


__all__ = ["FileTicket"]
