"""Filing remembers a form's enabled version per process and skips reading it; a remembered
version that is no longer current (edited, disabled or deleted form, perhaps by another worker)
never files a ticket: the guarded INSERT files nothing and the current form decides."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tekudasai.db.session import Database
from tekudasai.forms.errors import FormNotFound
from tekudasai.forms.models import Form, FormVersion
from tekudasai.tickets import service as tickets_service
from tests.factories import Person
from tests.tickets.conftest import FORM_ELEMENTS, GOOD_RESPONSE, FileTicket, make_form, scalar

URGENCY = {
    "id": "e3",
    "type": "textarea",
    "name": "urgency",
    "label": "How urgent?",
    "required": True,
    "placeholder": "",
}


async def post(client: httpx.AsyncClient, person: Person, form_id: str, answers: Any) -> Any:
    body = {"formId": form_id, "summary": "Printer", "formResponse": answers}
    return await client.post("/api/tickets/my", json=body, headers=person.auth)


async def filed_version(database: Database, ticket_id: int) -> Any:
    return await scalar(database, "SELECT form_version FROM tickets WHERE id = :id", id=ticket_id)


async def remember(database: Database, form_id: str) -> tickets_service._Enabled:
    """The process's entry for the form, read as a request would."""
    async with database.sessionmaker() as db, db.begin():
        await tickets_service.enabled_form_plan(db, form_id=form_id)
    return tickets_service._enabled[form_id]


async def test_an_edited_form_files_against_its_new_version_and_rules(
    client: httpx.AsyncClient,
    reporter: Person,
    admin: Person,
    form: Form,
    file_ticket: FileTicket,
    database: Database,
) -> None:
    first = await file_ticket(reporter)
    assert tickets_service._enabled[form.id].version == 1  # remembered: the next skips the read
    assert await filed_version(database, first["id"]) == 1

    # Version 2 requires a new answer: the remembered rules would have accepted the old one.
    elements = [*FORM_ELEMENTS, URGENCY]
    edited = await client.patch(
        f"/api/forms/{form.id}", json={"elements": elements}, headers=admin.auth
    )
    assert edited.status_code == 200, edited.text
    refused = await post(client, reporter, form.id, GOOD_RESPONSE)
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "INVALID_FORM_DATA"
    assert [e["field"] for e in refused.json()["errors"]] == ["urgency"]

    filed = await post(client, reporter, form.id, {**GOOD_RESPONSE, "urgency": "Today"})
    assert filed.status_code == 200, filed.text
    assert await filed_version(database, filed.json()["data"]["id"]) == 2
    assert tickets_service._enabled[form.id].version == 2

    # Version 3 drops a required answer the remembered rules (version 2) still demand: the
    # current rules decide, so this is filed, not refused.
    loose = [{**e, "required": False} for e in elements]
    assert (
        await client.patch(f"/api/forms/{form.id}", json={"elements": loose}, headers=admin.auth)
    ).status_code == 200
    assert tickets_service._enabled[form.id].version == 2
    filed = await post(client, reporter, form.id, {"category": "software"})
    assert filed.status_code == 200, filed.text
    assert await filed_version(database, filed.json()["data"]["id"]) == 3
    assert await scalar(database, "SELECT count(*) FROM tickets") == 3
    assert await scalar(database, "SELECT count(*) FROM ticket_logs") == 3


async def test_a_form_disabled_after_it_was_remembered_is_404(
    client: httpx.AsyncClient,
    reporter: Person,
    admin: Person,
    form: Form,
    file_ticket: FileTicket,
    database: Database,
) -> None:
    await file_ticket(reporter)
    assert form.id in tickets_service._enabled
    disabled = await client.patch(
        f"/api/forms/{form.id}", json={"disabled": True}, headers=admin.auth
    )
    assert disabled.status_code == 200, disabled.text
    for answers in (GOOD_RESPONSE, {"category": "banana"}):  # valid or not: the form is gone
        response = await post(client, reporter, form.id, answers)
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "NOT_FOUND"
    assert form.id not in tickets_service._enabled
    assert await scalar(database, "SELECT count(*) FROM tickets") == 1
    assert await scalar(database, "SELECT count(*) FROM ticket_logs") == 1


async def test_a_form_deleted_after_it_was_remembered_is_404_and_its_id_can_come_back(
    client: httpx.AsyncClient, reporter: Person, admin: Person, database: Database
) -> None:
    await make_form(database, form_id="short-lived")
    await remember(database, "short-lived")
    for change in (
        client.patch("/api/forms/short-lived", json={"disabled": True}, headers=admin.auth),
        client.delete("/api/forms/short-lived", headers=admin.auth),
    ):
        assert (await change).status_code == 200
    response = await post(client, reporter, "short-lived", GOOD_RESPONSE)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "NOT_FOUND"
    assert await scalar(database, "SELECT count(*) FROM tickets") == 0

    # The same id, the same version number, another definition (fixed ids of demo forms): the
    # remembered version's creation time tells them apart.
    stale = await remember_stale(database, "short-lived")
    async with database.sessionmaker() as db, db.begin():
        db.add(Form(id="short-lived", name="Again", elements=[URGENCY], version=1))
        await db.flush()
        db.add(FormVersion(form_id="short-lived", version=1, name="Again", elements=[URGENCY]))
    tickets_service._enabled["short-lived"] = stale
    refused = await post(client, reporter, "short-lived", GOOD_RESPONSE)
    assert refused.status_code == 400, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["urgency"]
    filed = await post(client, reporter, "short-lived", {"urgency": "Now"})
    assert filed.status_code == 200, filed.text
    stored = await scalar(
        database, "SELECT form_response FROM tickets WHERE id = :id", id=filed.json()["data"]["id"]
    )
    assert stored == {"urgency": "Now"}


async def remember_stale(database: Database, form_id: str) -> tickets_service._Enabled:
    """An entry for a form that no longer exists: as another worker would still hold it."""
    await make_form(database, form_id=form_id)
    entry = await remember(database, form_id)
    async with database.engine.begin() as conn:
        await conn.execute(text("DELETE FROM forms WHERE id = :id"), {"id": form_id})
    return entry


async def test_a_stale_entry_alone_cannot_insert(
    reporter: Person, form: Form, database: Database
) -> None:
    """Each worker remembers on its own: one may hold version 1 while another has made
    version 2, or disabled the form. The guarded INSERT alone, given the stale entry, files
    nothing; the service given it files against the current version."""
    stale = await remember(database, form.id)
    async with database.engine.begin() as conn:  # another worker's edit
        await conn.execute(
            text(
                "INSERT INTO form_versions (form_id, version, name, elements)"
                " SELECT id, 2, name, elements FROM forms WHERE id = :id;"
            ),
            {"id": form.id},
        )
        await conn.execute(text("UPDATE forms SET version = 2 WHERE id = :id"), {"id": form.id})

    values = {
        "reporter_id": reporter.user.id,
        "summary": "Stale",
        "form_id": form.id,
        "form_version": stale.version,
        "form_response": json.dumps(GOOD_RESPONSE),
        "log_details": json.dumps({}),
        "upload_ids": json.dumps([]),
        "form_created_at": stale.created_at,
    }
    guarded = tickets_service.create_statement(guarded=True)
    async with database.sessionmaker() as db, db.begin():
        assert await guarded.fetchrow(db, **values) is None
    assert await scalar(database, "SELECT count(*) FROM tickets") == 0
    assert await scalar(database, "SELECT count(*) FROM ticket_logs") == 0

    tickets_service._enabled[form.id] = stale
    async with database.sessionmaker() as db, db.begin():
        ticket = await tickets_service.create_ticket(
            db,
            reporter_id=reporter.user.id,
            form_id=form.id,
            summary="Filed",
            form_response=GOOD_RESPONSE,
        )
    assert ticket.form_version == 2
    assert await filed_version(database, ticket.id) == 2
    assert tickets_service._enabled[form.id].version == 2

    # Disabled by the other worker: the current entry is stale now too.
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE forms SET disabled = true WHERE id = :id"), {"id": form.id})
    current = tickets_service._enabled[form.id]
    async with database.sessionmaker() as db, db.begin():
        row = await guarded.fetchrow(
            db, **{**values, "form_version": 2, "form_created_at": current.created_at}
        )
        assert row is None
        with pytest.raises(FormNotFound):
            await tickets_service.create_ticket(
                db,
                reporter_id=reporter.user.id,
                form_id=form.id,
                summary="Never",
                form_response=GOOD_RESPONSE,
            )
    assert await scalar(database, "SELECT count(*) FROM tickets") == 1


async def test_the_remembered_version_still_files_when_current(
    reporter: Person, form: Form, database: Database
) -> None:
    """The hot path itself: the guarded INSERT files when the entry is current."""
    entry = await remember(database, form.id)
    values = {
        "reporter_id": reporter.user.id,
        "summary": "Current",
        "form_id": form.id,
        "form_version": entry.version,
        "form_response": json.dumps(GOOD_RESPONSE),
        "log_details": json.dumps({}),
        "upload_ids": json.dumps([]),
        "form_created_at": entry.created_at,
    }
    async with database.sessionmaker() as db, db.begin():
        row = await tickets_service.create_statement(guarded=True).fetchrow(db, **values)
    assert row is not None
    assert await filed_version(database, row["id"]) == 1
    assert await scalar(database, "SELECT count(*) FROM ticket_logs") == 1
