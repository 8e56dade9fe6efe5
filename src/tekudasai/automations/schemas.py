"""Automation input and output as the API has them; rules.py checks the contents."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictInt

from tekudasai.core.schemas import CamelModel, PathIdInput, StrictInput

Event = Literal[
    "ticket.created",
    "ticket.updated",
    "comment.created",
    "sla.warning",
    "sla.breached",
    "ticket.idle",
]


class AutomationCreate(StrictInput):
    name: str = Field(max_length=200)
    enabled: bool = True
    position: StrictInt = Field(default=0, ge=0, le=100_000)
    event: Event
    idle_hours: StrictInt | None = None
    conditions: list[dict[str, Any]] = Field(default_factory=list, max_length=50)
    actions: list[dict[str, Any]] = Field(max_length=50)


class AutomationPatch(PathIdInput):
    name: str | None = Field(default=None, max_length=200)
    enabled: bool | None = None
    position: StrictInt | None = Field(default=None, ge=0, le=100_000)
    event: Event | None = None
    idle_hours: StrictInt | None = None
    conditions: list[dict[str, Any]] | None = Field(default=None, max_length=50)
    actions: list[dict[str, Any]] | None = Field(default=None, max_length=50)


class AutomationOut(CamelModel):
    id: str
    name: str
    enabled: bool
    position: int
    event: Event
    idle_hours: int | None
    conditions: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    created_at: str
    updated_at: str
