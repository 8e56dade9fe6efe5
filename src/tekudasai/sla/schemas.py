"""Calendar input and output as the API has them."""

from __future__ import annotations

from pydantic import Field, StrictInt

from tekudasai.core.schemas import CamelModel, PathIdInput, StrictInput

# {"mon": [["09:00", "17:00"], ["18:00", "20:00"]], …}; checked by calendars.check_hours.
Hours = dict[str, list[list[str]]]


class CalendarCreate(StrictInput):
    name: str = Field(max_length=200)
    timezone: str = Field(max_length=100)
    hours: Hours
    holidays: list[str] = Field(default_factory=list, max_length=1000)
    holiday_country: str | None = Field(default=None, max_length=10)


class CalendarPatch(PathIdInput):
    name: str | None = Field(default=None, max_length=200)
    timezone: str | None = Field(default=None, max_length=100)
    hours: Hours | None = None
    holidays: list[str] | None = Field(default=None, max_length=1000)
    holiday_country: str | None = Field(default=None, max_length=10)


class CalendarOut(CamelModel):
    id: str
    name: str
    timezone: str
    hours: dict[str, list[list[str]]]
    holidays: list[str]
    holiday_country: str | None
    created_at: str
    updated_at: str


class PolicyCreate(StrictInput):
    name: str = Field(max_length=200)
    position: StrictInt = Field(default=0, ge=0, le=100_000)
    conditions: dict[str, list[str]] = Field(default_factory=dict)
    calendar_id: str = Field(max_length=100)
    first_response_minutes: StrictInt
    resolution_minutes: StrictInt


class PolicyPatch(PathIdInput):
    name: str | None = Field(default=None, max_length=200)
    position: StrictInt | None = Field(default=None, ge=0, le=100_000)
    conditions: dict[str, list[str]] | None = None
    calendar_id: str | None = Field(default=None, max_length=100)
    first_response_minutes: StrictInt | None = None
    resolution_minutes: StrictInt | None = None


class PolicyOut(CamelModel):
    id: str
    name: str
    position: int
    conditions: dict[str, list[str]]
    calendar_id: str
    first_response_minutes: int
    resolution_minutes: int
    created_at: str
    updated_at: str
