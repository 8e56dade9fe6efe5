"""What the forms API answers, for the OpenAPI document (and validated on the way out)."""

from __future__ import annotations

from typing import Any

from tekudasai.core.schemas import CamelModel, Timestamp


class FormOut(CamelModel):
    """The contract's form object (`service.form_view`)."""

    id: str
    name: str
    description: str
    disabled: bool
    elements: list[dict[str, Any]]
    version: int
    creator_id: str | None
    created_at: Timestamp
    updated_at: Timestamp
    has_tickets: bool


class CheckedResponse(CamelModel):
    """The answers as ticket creation would store them."""

    form_response: dict[str, Any]
