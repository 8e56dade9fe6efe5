"""Webhooks and their deliveries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from tekudasai.core.ids import new_id
from tekudasai.db.base import Base, Timestamped


class Webhook(Timestamped, Base):
    """A receiver URL and the events it wants. The signing secret is stored encrypted (it must
    be read back to sign), under the same keys as personal data."""

    __tablename__ = "webhooks"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(ARRAY(Text))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    include_internal: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )


class WebhookDelivery(Base):
    """One message to one webhook, with the outcome of its latest try.

    Deliveries of one webhook for one ticket form a lane, sent in event order: a delivery is
    sent only when no earlier one of its lane is still pending (delivery.py)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
        Index("ix_webhook_deliveries_webhook_id_id", "webhook_id", "id"),
        Index(
            "ix_webhook_deliveries_lane",
            "webhook_id",
            "ticket_id",
            "event_id",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    # The ticket event it reports (events are pruned after days; deliveries outlive them).
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    ticket_id: Mapped[int | None] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(Text)
    # `webhook-id`: the same for every try, so receivers can drop duplicates.
    msg_id: Mapped[str] = mapped_column(Text, unique=True)
    # The exact body sent (and signed) on every try.
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    # The job that owns the lane's head while it is being tried and between its retries.
    leased_by: Mapped[int | None] = mapped_column(BigInteger)
    lease_until: Mapped[datetime | None]
