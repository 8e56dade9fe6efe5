"""Canned responses: each agent's own, and shared ones admins manage."""

from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from tekudasai.core.ids import new_id
from tekudasai.db.base import Base, Timestamped


class CannedResponse(Timestamped, Base):
    __tablename__ = "canned_responses"
    __table_args__ = (
        CheckConstraint("length(title) BETWEEN 1 AND 200", name="title_length"),
        CheckConstraint("length(body) BETWEEN 1 AND 20000", name="body_length"),
    )
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    shared: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
