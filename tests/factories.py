"""Test data made through the real services (and so the real encryption and hashing)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest

from tekudasai.accounts import service as accounts_service
from tekudasai.accounts.models import User
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tekudasai.forms import service as forms_service

_seq = itertools.count(1)
DEFAULT_PASSWORD = "correct-horse-battery"


@dataclass
class Person:
    user: User
    token: str
    email: str
    name: str
    password: str

    @property
    def auth(self) -> dict[str, str]:
        """Headers for an API client signed in as this person."""
        return {"Authorization": f"Bearer {self.token}"}


async def make_person(
    database: Database,
    cipher: PiiCipher,
    *,
    role: str = "user",
    email: str | None = None,
    name: str | None = None,
    password: str = DEFAULT_PASSWORD,
) -> Person:
    n = next(_seq)
    email = email or f"{role}{n}@example.test"
    name = name or f"{role.title()} Number{n}"
    async with database.sessionmaker() as db, db.begin():
        user = await accounts_service.create_user(
            db, cipher, email=email, name=name, password=password, role=role, email_verified=True
        )
        token, _ = await accounts_service.create_session(db, user_id=user.id)
    return Person(user=user, token=token, email=email, name=name, password=password)


def person_fixture(role: str = "user") -> Any:
    """A fixture making a fresh person of `role`; the conftest name it is assigned to names it."""

    @pytest.fixture
    async def fixture(database: Database, cipher: PiiCipher) -> Person:
        return await make_person(database, cipher, role=role)

    return fixture


async def make_form(
    database: Database,
    creator: Person,
    *,
    elements: list[dict[str, Any]],
    name: str = "Form",
    description: str = "",
    disabled: bool = False,
) -> dict[str, Any]:
    """A form made through the forms service in its own transaction; returns its view."""
    async with database.sessionmaker() as db, db.begin():
        return await forms_service.create_form(
            db,
            creator_id=creator.user.id,
            name=name,
            description=description,
            disabled=disabled,
            elements=elements,
        )
