"""Business time against a minute-by-minute reference, across DST changes and holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tekudasai.sla.businesstime import (
    Calendar,
    CalendarError,
    Interval,
    due_at,
    working_minutes,
)

MINUTE = timedelta(minutes=1)
ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Pacific/Auckland",
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "America/Santiago",  # shifts at midnight
    "America/St_Johns",  # a half-hour offset
    "Asia/Kolkata",
)
# Days with a DST change in at least one of the zones above (2026).
CHANGES = (
    date(2026, 3, 8),
    date(2026, 3, 29),
    date(2026, 4, 5),
    date(2026, 9, 6),
    date(2026, 9, 27),
    date(2026, 10, 4),
    date(2026, 10, 25),
    date(2026, 11, 1),
)


def is_working(instant: datetime, calendar: Calendar, paused: list[Interval]) -> bool:
    """The definition, applied to one instant: wall-clock time in a range of its local
    weekday, on a local date that is no holiday, and not paused."""
    if any(low <= instant < high for low, high in paused):
        return False
    local = instant.astimezone(ZoneInfo(calendar.timezone))
    if calendar.is_holiday(local.date()):
        return False
    wall = local.time().replace(tzinfo=None)
    return any(
        opens <= wall and (closes == time.max or wall < closes)
        for opens, closes in calendar.hours[local.weekday()]
    )


def reference_due(
    start: datetime, minutes: int, calendar: Calendar, paused: list[Interval]
) -> datetime:
    instant, counted = start, 0
    while True:
        if is_working(instant, calendar, paused):
            counted += 1
            if counted == minutes:
                return instant + MINUTE
        instant += MINUTE


@st.composite
def ranges(draw: st.DrawFn) -> tuple[tuple[time, time], ...]:
    """Up to two sorted, disjoint [start, end) ranges on a 15-minute grid; an end may be 24:00."""
    cuts = sorted(draw(st.sets(st.integers(0, 96), max_size=4)))
    if len(cuts) % 2:
        cuts = cuts[:-1]
    pairs = []
    for low, high in zip(cuts[::2], cuts[1::2], strict=True):
        opens = time(low * 15 // 60, low * 15 % 60)
        closes = time.max if high == 96 else time(high * 15 // 60, high * 15 % 60)
        pairs.append((opens, closes))
    return tuple(pairs)


@st.composite
def calendars(draw: st.DrawFn) -> Calendar:
    week = {day: draw(ranges()) for day in range(7)}
    # Enough working time each week that the reference's minute walk stays short.
    assume(sum(1 for day in week.values() for _ in day) >= 3)
    near = draw(st.sampled_from(CHANGES))
    holidays = draw(
        st.sets(st.integers(-3, 10).map(lambda n: near + timedelta(days=n)), max_size=3)
    )
    return Calendar.weekly(draw(st.sampled_from(ZONES)), week, holidays)


@st.composite
def cases(draw: st.DrawFn) -> tuple[datetime, int, Calendar, list[Interval]]:
    calendar = draw(calendars())
    day = draw(st.sampled_from(CHANGES))
    start = datetime.combine(day, time(), UTC) + draw(st.integers(-36 * 60, 36 * 60)) * MINUTE
    paused: list[Interval] = []
    for _ in range(draw(st.integers(0, 2))):
        low = start + draw(st.integers(-600, 3000)) * MINUTE
        paused.append((low, low + draw(st.integers(1, 2000)) * MINUTE))
    return start, draw(st.integers(1, 480)), calendar, sorted(paused)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@example(  # found by CI: a DST change on an hour boundary was placed one second late
    (
        datetime(2026, 4, 5, 2, 59, tzinfo=UTC),
        2,
        Calendar.weekly("America/Santiago", {5: ((time(0), time.max),), 6: ((time(0), time.max),)}),
        [],
    )
)
@given(cases())
def test_due_time_matches_the_minute_by_minute_reference(
    case: tuple[datetime, int, Calendar, list[Interval]],
) -> None:
    start, minutes, calendar, paused = case
    expected = reference_due(start, minutes, calendar, paused)
    assert due_at(start, minutes, calendar, paused) == expected
    # And the time used up to the due instant is exactly the target.
    assert working_minutes(start, expected, calendar, paused) == minutes


def nine_to_five(zone: str, **extra: object) -> Calendar:
    office = ((time(9), time(17)),)
    return Calendar.weekly(zone, {day: office for day in range(5)}, **extra)  # type: ignore[arg-type]


def test_a_day_that_loses_an_hour_has_23_working_hours() -> None:
    always = Calendar.weekly("Europe/Berlin", {day: ((time(0), time.max),) for day in range(7)})
    midnight = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # 00:00 in Berlin on the 29th
    assert due_at(midnight, 23 * 60, always) == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)


def test_friday_evening_runs_into_monday_and_skips_a_public_holiday() -> None:
    # Waitangi Day, Friday 6 February 2026, is a public holiday in New Zealand.
    calendar = nine_to_five("Pacific/Auckland", country="NZ")
    thursday_four_pm = datetime(2026, 2, 5, 16, 0, tzinfo=ZoneInfo("Pacific/Auckland"))
    due = due_at(thursday_four_pm, 120, calendar)
    assert due.astimezone(ZoneInfo("Pacific/Auckland")) == datetime(
        2026, 2, 9, 10, 0, tzinfo=ZoneInfo("Pacific/Auckland")
    )


def test_pending_time_does_not_count() -> None:
    calendar = nine_to_five("UTC")
    monday_nine = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    pending = [(monday_nine + timedelta(hours=1), monday_nine + timedelta(hours=3))]
    assert due_at(monday_nine, 180, calendar, pending) == monday_nine + timedelta(hours=5)
    assert working_minutes(monday_nine, monday_nine + timedelta(hours=5), calendar, pending) == 180


def test_a_calendar_without_hours_never_falls_due() -> None:
    with pytest.raises(CalendarError):
        due_at(datetime(2026, 1, 1, tzinfo=UTC), 60, Calendar.weekly("UTC", {}))
    with pytest.raises(ValueError):
        due_at(datetime(2026, 1, 1, tzinfo=UTC), 0, nine_to_five("UTC"))
