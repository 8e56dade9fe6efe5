"""Teams and their members."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from tekudasai.core.ids import new_id
from tekudasai.db.base import Base, Timestamped

ASSIGNMENTS = ("manual", "round_robin", "least_open")


class Team(Timestamped, Base):
    __tablename__ = "teams"
    __table_args__ = (
        CheckConstraint("assignment IN ('manual', 'round_robin', 'least_open')", name="assignment"),
    )
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(Text, unique=True)
    assignment: Mapped[str] = mapped_column(Text, default="manual", server_default="manual")


class TeamMember(Base):
    __tablename__ = "team_members"

    team_id: Mapped[str] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    # Round robin hands the next ticket to the member assigned longest ago (never first).
    last_assigned_at: Mapped[datetime | None]
