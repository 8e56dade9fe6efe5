"""Operational records: database size history and alert state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, Identity, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tekudasai.db.base import Base


class SizeSample(Base):
    __tablename__ = "size_samples"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    sampled_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    database_bytes: Mapped[int] = mapped_column(BigInteger)
    tables: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class AlertState(Base):
    __tablename__ = "alert_states"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    firing: Mapped[bool] = mapped_column(Boolean, default=False)
    value: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class TrafficSample(Base):
    """Requests, errors and latency quantiles of the service over one sampling interval."""

    __tablename__ = "traffic_samples"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    sampled_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    p50_ms: Mapped[float | None] = mapped_column(Float)
    p95_ms: Mapped[float | None] = mapped_column(Float)
    p99_ms: Mapped[float | None] = mapped_column(Float)
    # Cumulative counters at sampling time, so the next sample can take the difference.
    totals: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
