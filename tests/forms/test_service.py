"""The functions the tickets domain calls, on real PostgreSQL."""

from __future__ import annotations

import pytest

from tekudasai.core.ids import new_id
from tekudasai.db.session import Database
from tekudasai.forms import service
from tekudasai.forms.errors import FormNotFound, InvalidFormData
from tekudasai.uploads.models import Upload
from tests.factories import Person, make_form

ELEMENTS = [
    {"type": "text-field", "name": "title", "label": "Title", "required": True},
    {"type": "file-upload", "name": "shot", "label": "Screenshot", "required": False},
]


async def _form(database: Database, admin: Person, *, disabled: bool = False) -> str:
    view = await make_form(database, admin, name="Bug", disabled=disabled, elements=ELEMENTS)
    return view["id"]


async def _upload(database: Database, owner: Person) -> Upload:
    upload = Upload(
        id=new_id(),
        uploader_id=owner.user.id,
        original_name="shot.png",
        mime_type="image/png",
        size=3,
        sha256="0" * 64,
        storage_key=new_id(),
    )
    async with database.sessionmaker() as db, db.begin():
        db.add(upload)
    return upload


async def test_enabled_form_and_version(database: Database, admin: Person) -> None:
    enabled = await _form(database, admin)
    disabled = await _form(database, admin, disabled=True)
    async with database.sessionmaker() as db:
        form = await service.get_enabled_form(db, form_id=enabled)
        version = await service.get_form_version(db, form_id=form.id, version=form.version)
        assert version.elements[0]["name"] == "title"
        view = service.form_view(form, version, has_tickets=False)
        assert view["elements"][1]["type"] == "file-upload"
        assert view["createdAt"].endswith("Z") and view["hasTickets"] is False
        with pytest.raises(FormNotFound):
            await service.get_enabled_form(db, form_id=disabled)
        with pytest.raises(FormNotFound):
            await service.get_enabled_form(db, form_id="missing")
        with pytest.raises(FormNotFound):
            await service.get_form_version(db, form_id=enabled, version=2)


async def test_validate_for_ticket_resolves_own_uploads(
    database: Database, admin: Person, customer: Person
) -> None:
    form_id = await _form(database, admin)
    mine = await _upload(database, customer)
    theirs = await _upload(database, admin)
    async with database.sessionmaker() as db:
        version = await service.get_form_version(db, form_id=form_id, version=1)
        for answer in (mine.id, {"filename": mine.id, "originalName": "x"}):
            values, ids = await service.validate_for_ticket(
                db,
                plan=service.plan_of(version),
                response={"title": "t", "shot": answer, "junk": 1},
                reporter_id=customer.user.id,
            )
            assert ids == [mine.id]
            assert values == {
                "title": "t",
                "shot": {
                    "filename": mine.id,
                    "originalName": "shot.png",
                    "url": f"/api/uploads/{mine.id}",
                    "size": 3,
                    "mimeType": "image/png",
                },
            }
        with pytest.raises(InvalidFormData) as caught:
            await service.validate_for_ticket(
                db,
                plan=service.plan_of(version),
                response={"title": "", "shot": theirs.id},
                reporter_id=customer.user.id,
            )
        assert caught.value.errors == [
            {"field": "title", "message": "This field is required"},
            {"field": "shot", "message": "Unknown upload"},
        ]


async def test_plan_for_reads_the_definition_only_when_not_cached(
    database: Database, admin: Person
) -> None:
    from sqlalchemy import event

    form_id = await _form(database, admin)
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    async with database.sessionmaker() as db:
        version = await service.get_form_version(db, form_id=form_id, version=1)
    service._plans.clear()
    async with database.sessionmaker() as db:  # a fresh identity map: a miss must read
        event.listen(database.engine.sync_engine, "before_cursor_execute", record)
        try:
            first = await service.plan_for(
                db, form_id=form_id, version=1, created_at=version.created_at
            )
            read = len(statements)
            again = await service.plan_for(
                db, form_id=form_id, version=1, created_at=version.created_at
            )
        finally:
            event.remove(database.engine.sync_engine, "before_cursor_execute", record)
    assert again is first
    assert read == 1 and len(statements) == 1  # the second call sent nothing
    assert [e.name for e in first.elements] == ["title", "shot"]
