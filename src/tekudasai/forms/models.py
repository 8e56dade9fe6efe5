"""Form definitions and their immutable versions (a ticket keeps the version it was filed with)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tekudasai.core.ids import new_id
from tekudasai.db.base import Base, Timestamped


class Form(Timestamped, Base):
    __tablename__ = "forms"

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    creator_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    disabled: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="false", index=True
    )
    elements: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class FormVersion(Base):
    """A snapshot of a form's definition; written on create and on every edit of the elements."""

    __tablename__ = "form_versions"

    form_id: Mapped[str] = mapped_column(
        ForeignKey("forms.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    elements: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    created_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
