"""The response envelope and camelCase models shared by every domain."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel

T = TypeVar("T")


def iso(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a Z, as the original (JavaScript) clients expect."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


UtcDatetime = Annotated[datetime, PlainSerializer(iso, return_type=str)]


class CamelModel(BaseModel):
    """JSON in camelCase (compatibility with the original clients), Python in snake_case."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class StrictInput(CamelModel):
    """Request bodies: unknown keys are refused, not silently ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_strip_whitespace=False
    )


class Pagination(CamelModel):
    page: int
    limit: int
    total: int
    total_pages: int


class Meta(CamelModel):
    pagination: Pagination


class Envelope(BaseModel, Generic[T]):
    status: str = "success"
    data: T


class PageEnvelope(BaseModel, Generic[T]):
    status: str = "success"
    data: list[T]
    meta: Meta


def ok(data: Any) -> dict[str, Any]:
    return {"status": "success", "data": data}


def page(items: list[Any], *, page: int, limit: int, total: int) -> dict[str, Any]:
    return {
        "status": "success",
        "data": items,
        "meta": {
            "pagination": {
                "page": page,
                "limit": limit,
                "total": total,
                "totalPages": math.ceil(total / limit) if total else 0,
            }
        },
    }


class PageParams(BaseModel):
    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


def page_params(
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> PageParams:
    return PageParams(page=page, limit=limit)
