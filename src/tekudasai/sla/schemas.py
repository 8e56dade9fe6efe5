"""Calendar input and output as the API has them."""

from __future__ import annotations

from pydantic import Field

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
