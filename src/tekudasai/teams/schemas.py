"""Team input and output as the API has them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tekudasai.core.schemas import CamelModel, PathIdInput, StrictInput

Assignment = Literal["manual", "round_robin", "least_open"]


class TeamCreate(StrictInput):
    name: str = Field(max_length=200)
    member_ids: list[str] = Field(default_factory=list, max_length=500)
    assignment: Assignment = "manual"


class TeamPatch(PathIdInput):
    name: str | None = Field(default=None, max_length=200)
    member_ids: list[str] | None = Field(default=None, max_length=500)
    assignment: Assignment | None = None


class TeamOut(CamelModel):
    id: str
    name: str
    member_ids: list[str]
    assignment: Assignment
    created_at: str
    updated_at: str
