"""The response envelope and camelCase models shared by every domain."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from tekudasai.core.errors import ValidationFailed

T = TypeVar("T")


def iso(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a Z, as the original (JavaScript) clients expect."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


UtcDatetime = Annotated[datetime, PlainSerializer(iso, return_type=str)]


class CamelModel(BaseModel):
    """JSON in camelCase (compatibility with the original clients), Python in snake_case."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class StrictInput(CamelModel):
    """Request bodies: typed fields are checked strictly; keys they do not know are ignored, as
    the original did (its clients send extra keys, e.g. `id` in every PATCH body)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", str_strip_whitespace=False
    )


class PathIdInput(StrictInput):
    """A body for a path with an id: the original clients repeat that id in the body. It is
    accepted when it names the same object; `check_path_id` refuses a different one."""

    body_id: Any = Field(
        default=None, alias="id", exclude=True, description="optional; must equal the path's id"
    )

    def check_path_id(self, path_id: int | str) -> None:
        """400 VALIDATION_ERROR when the body names another object than the path does."""
        if self.body_id is None:
            return
        # The original sends numbers for ticket ids and strings for form ids; compare as text.
        usable = isinstance(self.body_id, int | str) and not isinstance(self.body_id, bool)
        if not usable or str(self.body_id) != str(path_id):
            raise ValidationFailed(
                "The id in the body does not match the id in the path.",
                errors=[{"field": "id", "message": "does not match the id in the path"}],
            )


# Response models: what the OpenAPI document says comes back. Routes that return a prebuilt
# Response (the hot ticket routes) are documented by them without being validated.

# A timestamp as `iso` writes it; passed through as text, never re-parsed.
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


class Pagination(CamelModel):
    page: int
    limit: int
    total: int
    total_pages: int


class Meta(CamelModel):
    pagination: Pagination


class Envelope(BaseModel, Generic[T]):
    """`{"status":"success","data":…}`."""

    status: Literal["success"] = "success"
    data: T


class PageEnvelope(BaseModel, Generic[T]):
    """A page of a list: the envelope plus `meta.pagination`."""

    status: Literal["success"] = "success"
    data: list[T]
    meta: Meta


class Deleted(CamelModel):
    """What a DELETE of an object with a text id answers (in the envelope)."""

    id: str


class FieldError(BaseModel):
    field: str
    message: str


class ErrorEnvelope(BaseModel):
    """`{"status":"error","message":…,"code":…}`; validation errors add `errors`."""

    status: Literal["error"]
    message: str
    code: str
    errors: list[FieldError] | None = None


# Every API route's error answers (4xx and 5xx) are the error envelope. Also replaces the
# 422 FastAPI would document: invalid input answers 400 VALIDATION_ERROR here.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorEnvelope, "description": "Error (see `code`)"},
    "5XX": {"model": ErrorEnvelope, "description": "Unexpected error or unavailable"},
}


def ok(data: Any) -> dict[str, Any]:
    return {"status": "success", "data": data}


def page_meta(*, page: int, limit: int, total: int) -> dict[str, Any]:
    return {
        "pagination": {
            "page": page,
            "limit": limit,
            "total": total,
            "totalPages": math.ceil(total / limit) if total else 0,
        }
    }


def page(items: list[Any], *, page: int, limit: int, total: int) -> dict[str, Any]:
    return {
        "status": "success",
        "data": items,
        "meta": page_meta(page=page, limit=limit, total=total),
    }


def ok_text(data_json: str) -> str:
    """`ok` around data that is JSON text already (rendered by the database)."""
    return f'{{"status":"success","data":{data_json}}}'


def page_text(items_json: list[str], meta: dict[str, Any]) -> str:
    """`page` around items that are JSON text already; `meta` as `page_meta` makes it."""
    return (
        f'{{"status":"success","data":[{",".join(items_json)}],'
        f'"meta":{json.dumps(meta, separators=(",", ":"))}}}'
    )


@dataclass(frozen=True, slots=True)
class PageParams:
    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


MAX_PAGE = 1_000_000
MAX_LIMIT = 100
DEFAULT_LIMIT = 10


async def page_params(  # async: a plain def would run in the thread pool
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> PageParams:
    return PageParams(page=page, limit=limit)


class PageQuery(BaseModel):
    """`page` and `limit` with page_params' bounds, for a `query_model` to extend."""

    model_config = ConfigDict(extra="ignore")

    page: int = Field(1, ge=1, le=MAX_PAGE)
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


# -- Query strings as one model ----------------------------------------------------------------

QueryModelT = TypeVar("QueryModelT", bound=BaseModel)


def query_model(model: type[QueryModelT]) -> Callable[[Request], Awaitable[QueryModelT]]:
    """A dependency reading the query string into `model` with one validation.

    FastAPI extracts declared query parameters one at a time and inspects each one's type on
    every request; for the ticket lists' eleven that was a seventh of a request's CPU in
    process (py-spy of bench/request_overhead.py). Declare `query_parameters(model)` in the
    route's `openapi_extra` so the document lists them as before. Bad values answer the same
    400 VALIDATION_ERROR with the parameter's name as the field.
    """

    async def parse(request: Request) -> QueryModelT:
        try:
            # A repeated parameter counts once, with its last value (as FastAPI's did).
            return model.model_validate(dict(request.query_params))
        except ValidationError as error:
            raise RequestValidationError(
                [{**e, "loc": ("query", *e["loc"])} for e in error.errors(include_url=False)]
            ) from None

    return parse


def query_parameters(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI `parameters` of a `query_model`: one optional or required query parameter
    per field, under its alias, with the field's schema and description."""
    schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    required = set(schema.get("required", ()))
    parameters = []
    for name, field_schema in schema["properties"].items():
        parameter = {"name": name, "in": "query", "required": name in required}
        if "description" in field_schema:
            parameter["description"] = field_schema["description"]
        parameters.append({**parameter, "schema": field_schema})
    return {"parameters": parameters}
