"""The reports summary as the API has it."""

from __future__ import annotations

from pydantic import Field

from tekudasai.core.schemas import CamelModel


class Percentiles(CamelModel):
    p50: float | None
    p90: float | None


class DayFigures(CamelModel):
    date: str
    created: int
    resolved: int


class AgentFigures(CamelModel):
    user_id: str
    name: str
    assigned: int
    resolved: int
    first_response_minutes: Percentiles


class Summary(CamelModel):
    from_: str = Field(alias="from")
    to: str
    team_id: str | None
    created: int
    resolved: int
    backlog: int
    first_response_minutes: Percentiles
    resolution_minutes: Percentiles
    sla_met: float | None
    sla_finished: int
    by_day: list[DayFigures]
    by_agent: list[AgentFigures]
