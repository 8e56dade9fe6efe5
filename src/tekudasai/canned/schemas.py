"""Canned response input and output as the API has them."""

from __future__ import annotations

from pydantic import Field

from tekudasai.core.schemas import CamelModel, PathIdInput, StrictInput


class CannedCreate(StrictInput):
    title: str = Field(max_length=200)
    body: str = Field(max_length=20_000)
    shared: bool = False


class CannedPatch(PathIdInput):
    title: str | None = Field(default=None, max_length=200)
    body: str | None = Field(default=None, max_length=20_000)
    shared: bool | None = None


class CannedOut(CamelModel):
    id: str
    title: str
    body: str
    shared: bool
    owner_id: str
    created_at: str
    updated_at: str
