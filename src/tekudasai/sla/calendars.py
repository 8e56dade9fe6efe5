"""Business-hours calendars: checked input, stored as given, turned into a `Calendar`."""

from __future__ import annotations

import itertools
import re
import zoneinfo
from collections.abc import Callable
from datetime import date, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.core.errors import AppError, NotFound, ValidationFailed
from tekudasai.core.schemas import iso
from tekudasai.sla.businesstime import Calendar
from tekudasai.sla.models import BusinessCalendar, SlaPolicy

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_RANGES_PER_DAY = 12
_CLOCK = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d|24:00")


class CalendarNotFound(NotFound):
    message = "Calendar not found."


class CalendarInUse(AppError):
    status_code = 409
    code = "CONFLICT"
    message = "An SLA policy uses this calendar: change or delete the policy first."


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def check_hours(hours: dict[str, list[list[str]]]) -> dict[str, list[list[str]]]:
    """Weekly hours with every range ["HH:MM", "HH:MM"] (24:00 ends a day), start before end,
    sorted and not overlapping within a day; unknown days refused. Field errors name the
    range (`hours.mon[1]`)."""
    errors: list[dict[str, str]] = []
    checked: dict[str, list[list[str]]] = {}
    for day, ranges in hours.items():
        if day not in WEEKDAYS:
            errors.append({"field": f"hours.{day}", "message": "not a weekday (mon … sun)"})
            continue
        if len(ranges) > MAX_RANGES_PER_DAY:
            errors.append({"field": f"hours.{day}", "message": "too many ranges"})
            continue
        spans: list[tuple[int, int, int]] = []
        for n, pair in enumerate(ranges):
            field = f"hours.{day}[{n}]"
            if len(pair) != 2 or not all(_CLOCK.fullmatch(clock) for clock in pair):
                errors.append({"field": field, "message": 'a range is ["HH:MM", "HH:MM"]'})
                continue
            opens, closes = _minutes(pair[0]), _minutes(pair[1])
            if pair[0] == "24:00" or opens >= closes:
                errors.append({"field": field, "message": "the range must end after it starts"})
                continue
            spans.append((opens, closes, n))
        spans.sort()
        for (_, first_end, _), (second_start, _, n) in itertools.pairwise(spans):
            if second_start < first_end:
                errors.append({"field": f"hours.{day}[{n}]", "message": "overlaps another range"})
        checked[day] = [list(ranges[n]) for _, _, n in spans]
    if errors:
        raise ValidationFailed("The business hours are not valid.", errors=errors)
    return {day: checked.get(day, []) for day in WEEKDAYS}


def check_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(
            f"Unknown time zone {name!r}.",
            errors=[{"field": "timezone", "message": "not an IANA time zone (e.g. Europe/Berlin)"}],
        ) from None
    return name


def check_holidays(days: list[str]) -> list[str]:
    errors = []
    for n, day in enumerate(days):
        try:
            date.fromisoformat(day)
        except ValueError:
            errors.append({"field": f"holidays[{n}]", "message": "not a date (YYYY-MM-DD)"})
    if errors:
        raise ValidationFailed("The holidays are not valid.", errors=errors)
    return sorted(set(days))


def check_country(code: str | None) -> str | None:
    if code is None:
        return None
    import holidays  # imported on use: building every country's rules is not free

    code = code.upper()
    if code not in holidays.list_supported_countries():
        raise ValidationFailed(
            f"No public holidays known for {code!r}.",
            errors=[{"field": "holidayCountry", "message": "not a supported country code"}],
        )
    return code


def check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ValidationFailed(
            "The calendar needs a name.", errors=[{"field": "name", "message": "is empty"}]
        )
    return name


def public(row: BusinessCalendar) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "timezone": row.timezone,
        "hours": row.hours,
        "holidays": row.holidays,
        "holidayCountry": row.holiday_country,
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
    }


def as_calendar(row: BusinessCalendar) -> Calendar:
    def clock(value: str) -> time:
        return time.max if value == "24:00" else time.fromisoformat(value)

    return Calendar.weekly(
        row.timezone,
        {
            WEEKDAYS.index(day): [(clock(a), clock(b)) for a, b in ranges]
            for day, ranges in row.hours.items()
        },
        (date.fromisoformat(day) for day in row.holidays),
        row.holiday_country,
    )


async def list_calendars(db: AsyncSession) -> list[BusinessCalendar]:
    return list((await db.scalars(select(BusinessCalendar).order_by(BusinessCalendar.name))).all())


async def get_calendar(db: AsyncSession, calendar_id: str) -> BusinessCalendar:
    row = await db.get(BusinessCalendar, calendar_id)
    if row is None:
        raise CalendarNotFound()
    return row


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    """Each field present (API names) through its check; every field's errors at once."""
    checks: dict[str, Callable[[Any], Any]] = {
        "name": check_name,
        "timezone": check_timezone,
        "hours": check_hours,
        "holidays": check_holidays,
        "holidayCountry": check_country,
    }
    checked: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for key, value in values.items():
        try:
            checked[key] = checks[key](value)
        except ValidationFailed as error:
            errors.extend(error.errors or [{"field": key, "message": error.message}])
    if errors:
        raise ValidationFailed("The calendar is not valid.", errors=errors)
    return checked


_COLUMNS = {
    "name": "name",
    "timezone": "timezone",
    "hours": "hours",
    "holidays": "holidays",
    "holidayCountry": "holiday_country",
}


async def create_calendar(
    db: AsyncSession,
    *,
    name: str,
    timezone: str,
    hours: dict[str, list[list[str]]],
    holidays: list[str],
    holiday_country: str | None,
) -> BusinessCalendar:
    checked = _checked(
        {
            "name": name,
            "timezone": timezone,
            "hours": hours,
            "holidays": holidays,
            "holidayCountry": holiday_country,
        }
    )
    row = BusinessCalendar(**{_COLUMNS[key]: value for key, value in checked.items()})
    db.add(row)
    await db.flush()
    return row


async def update_calendar(
    db: AsyncSession, calendar_id: str, changes: dict[str, Any]
) -> BusinessCalendar:
    """Apply the fields present in `changes` (API names), each checked as on creation; a null
    clears `holidayCountry` and leaves the other (required) fields as they are."""
    row = await get_calendar(db, calendar_id)
    given = {
        key: value
        for key, value in changes.items()
        if key in _COLUMNS and (value is not None or key == "holidayCountry")
    }
    for key, value in _checked(given).items():
        setattr(row, _COLUMNS[key], value)
    await db.flush()
    return row


async def delete_calendar(db: AsyncSession, calendar_id: str) -> None:
    """Delete a calendar no SLA policy uses (409 while one does)."""
    row = await get_calendar(db, calendar_id)
    if await db.scalar(select(SlaPolicy.id).where(SlaPolicy.calendar_id == calendar_id).limit(1)):
        raise CalendarInUse()
    await db.delete(row)
    await db.flush()
