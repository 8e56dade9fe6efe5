"""Request and response models of the notifications API (camelCase JSON)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from tekudasai.core.schemas import CamelModel, Envelope, StrictInput, Timestamp


class EmailPreferences(CamelModel):
    """The e-mail switches; customers see (and may set) only the first three."""

    ticket_created: bool | None = None
    agent_reply: bool | None = None
    status_changed: bool | None = None
    customer_reply: bool | None = None
    assigned: bool | None = None
    internal_note: bool | None = None
    new_ticket_for_agents: bool | None = None


class PreferencesOut(BaseModel):
    email: EmailPreferences


class PreferencesPatch(StrictInput):
    # Checked by the service (unknown names and non-booleans are field errors, not ignored).
    email: dict[str, Any] = Field(
        default_factory=dict,
        description='any subset of the switches, e.g. {"agentReply": false}',
        json_schema_extra={"additionalProperties": {"type": "boolean"}},
    )


class FeedItem(CamelModel):
    id: int
    ticket_id: int
    event: str
    text: str
    created_at: Timestamp
    read_at: Timestamp | None


class FeedMeta(CamelModel):
    unread: int
    next_cursor: str | None


class FeedPage(BaseModel):
    status: str = "success"
    data: list[FeedItem]
    meta: FeedMeta


NotificationId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class MarkRead(StrictInput):
    ids: list[NotificationId] | None = Field(default=None, max_length=500)
    all: bool | None = None


class MarkedRead(CamelModel):
    marked: int
    unread: int


OnePreferences = Envelope[PreferencesOut]
OneMarkedRead = Envelope[MarkedRead]
