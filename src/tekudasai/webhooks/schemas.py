"""Request bodies and response models of the webhooks API."""

from __future__ import annotations

from pydantic import Field

from tekudasai.core.schemas import CamelModel, Envelope, StrictInput, Timestamp
from tekudasai.webhooks.urlguard import MAX_URL_LENGTH


class WebhookIn(StrictInput):
    url: str = Field(max_length=MAX_URL_LENGTH)
    events: list[str] = Field(max_length=20)
    enabled: bool = True
    include_internal: bool = False


class WebhookPatch(StrictInput):
    url: str | None = Field(default=None, max_length=MAX_URL_LENGTH)
    events: list[str] | None = Field(default=None, max_length=20)
    enabled: bool | None = None
    include_internal: bool | None = None


class WebhookOut(CamelModel):
    id: str
    url: str
    host: str = Field(description="the URL's host as people read it (punycode decoded)")
    unusual_port: bool = Field(description="the URL names a port other than 80 or 443")
    events: list[str]
    enabled: bool
    include_internal: bool
    created_at: Timestamp
    updated_at: Timestamp


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="`whsec_…`: in this answer only")


class DeliveryOut(CamelModel):
    id: int
    msg_id: str
    event_type: str
    ticket_id: int | None
    status: str = Field(description="pending, delivered or failed (given up)")
    tries: int
    response_status: int | None
    response_body: str | None = Field(description="the first 2 KB of the receiver's answer")
    error: str | None
    duration_ms: int | None
    created_at: Timestamp
    last_attempt_at: Timestamp | None
    delivered_at: Timestamp | None


class Deleted(CamelModel):
    id: str
    deleted: bool


OneWebhook = Envelope[WebhookOut]
CreatedWebhook = Envelope[WebhookCreatedOut]
WebhookList = Envelope[list[WebhookOut]]
OneDelivery = Envelope[DeliveryOut]
DeliveryList = Envelope[list[DeliveryOut]]
DeletedWebhook = Envelope[Deleted]
