"""Ticket JSON written by PostgreSQL, for the hottest reads (lists and one's own ticket).

Building ORM objects, decoding each row's JSONB and encoding it all again cost more Python
time than the queries themselves. Here the database writes each ticket's JSON (in C, as it
reads the row) and Python only splices in the form object, which is rendered once per form
version and kept: a page of fifty tickets of three forms renders three forms.

The members come from the one declaration of the ticket object (`schemas.TICKET_FIELDS`), so
the shapes are those of `schemas.ticket_view` and `schemas.ticket_with_form`; a test compares
both for every kind of value.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, case, cast, func, literal_column, null, select
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.forms import service as forms_service
from tekudasai.forms.models import Form
from tekudasai.tickets.models import Ticket
from tekudasai.tickets.schemas import TICKET_FIELDS, TicketField

# ISO-8601 in UTC with milliseconds and a Z, as `core.schemas.iso` writes it (both truncate).
_ISO_FORMAT: ColumnElement[str] = literal_column("""'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'""")
_UTC: ColumnElement[str] = literal_column("'UTC'")


def _iso(column: Any) -> ColumnElement[str]:
    return func.to_char(func.timezone(_UTC, column), _ISO_FORMAT)


def _key(name: str) -> ColumnElement[str]:
    # Keys written into the statement, not bound: one parameter per key would be sent each time.
    return literal_column(f"'{name}'")


def _value(field: TicketField) -> Any:
    if field.members:
        # A nested object, or null when its column is (a ticket without an SLA).
        return case((field.column.is_(None), null()), else_=_object(field.members))
    return _iso(field.column) if field.timestamp else field.column


def _object(fields: tuple[TicketField, ...]) -> ColumnElement[Any]:
    arguments = [part for field in fields for part in (_key(field.key), _value(field))]
    return func.json_build_object(*arguments)


def ticket_json() -> ColumnElement[str]:
    """The contract's ticket object (`schemas.ticket_view`), as JSON text."""
    return cast(_object(TICKET_FIELDS), Text)


def rendered_head() -> Any:
    """Tickets as JSON text plus what identifies the view of their form (joined to forms)."""
    return select(
        Ticket.id,
        ticket_json().label("ticket_json"),
        Ticket.form_id,
        Ticket.form_version,
        Form.disabled.label("form_disabled"),
        Form.creator_id.label("form_creator_id"),
        Form.created_at.label("form_created_at"),
        Form.updated_at.label("form_updated_at"),
    ).join(Form, Form.id == Ticket.form_id)


FormKey = tuple[str, int, bool, str | None, datetime, datetime]


class FormViews:
    """Form objects as JSON text, by form version and the form's own state.

    A version's definition never changes; the form's `disabled`, creator and timestamps can,
    and they are part of the key, so a changed form is simply another entry: nothing stale is
    ever served and nothing needs invalidating. Bounded, least recently used out first.
    """

    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[FormKey, str] = OrderedDict()

    async def get(self, db: AsyncSession, row: Mapping[str, Any]) -> str:
        """The form of a `rendered_head` row."""
        key: FormKey = (
            row["form_id"],
            row["form_version"],
            row["form_disabled"],
            row["form_creator_id"],
            row["form_created_at"],
            row["form_updated_at"],
        )
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
            return found
        form_id, version_number, disabled, creator_id, created_at, updated_at = key
        version = await forms_service.get_form_version(db, form_id=form_id, version=version_number)
        form = Form(
            id=form_id,
            disabled=disabled,
            creator_id=creator_id,
            created_at=created_at,
            updated_at=updated_at,
        )
        text = json.dumps(
            forms_service.form_view(form, version, has_tickets=True), ensure_ascii=False
        )
        self._entries[key] = text
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return text


form_views = FormViews()


async def with_forms(db: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each ticket's JSON (rows of `rendered_head`) with its `form` (`ticket_with_form`)."""
    # Rows of one statement see one state of each form: look each version up once per page.
    forms: dict[tuple[str, int], str] = {}
    items = []
    for row in rows:
        key = (row["form_id"], row["form_version"])
        form = forms.get(key)
        if form is None:
            form = forms[key] = await form_views.get(db, row)
        # The JSON object ends with "}": the form goes in as its last member.
        items.append(f'{row["ticket_json"][:-1]}, "form" : {form}}}')
    return items
