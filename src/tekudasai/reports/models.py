"""The reports rollup (migration 0021; reports/rollup.py keeps and reads it)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, Identity, Integer, SmallInteger, Text
from sqlalchemy.orm import Mapped, mapped_column

from tekudasai.db.base import Base


class ReportRollup(Base):
    """Folded report figures: per block of days (`level` k: 2**k days from `start`, aligned on
    1970-01-01), kind, team and assignee ('' = none, '*' = all; all assignees only per day, for
    the counts), histogram bucket (-1 for the count kinds). Kinds: reports/rollup.py."""

    __tablename__ = "report_rollup"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    start: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    team_id: Mapped[str] = mapped_column(Text, primary_key=True)
    assignee_id: Mapped[str] = mapped_column(Text, primary_key=True)
    bucket: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    met: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    finished: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ReportDelta(Base):
    """Signed changes to the figures appended by the ticket triggers, not folded yet: rows are
    only ever inserted (by ticket writers) and deleted (by the fold)."""

    __tablename__ = "report_deltas"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    kind: Mapped[int] = mapped_column(SmallInteger)
    team_id: Mapped[str] = mapped_column(Text)
    assignee_id: Mapped[str] = mapped_column(Text)
    bucket: Mapped[int] = mapped_column(SmallInteger)
    n: Mapped[int] = mapped_column(Integer)
    met: Mapped[int] = mapped_column(Integer)
    finished: Mapped[int] = mapped_column(Integer)
