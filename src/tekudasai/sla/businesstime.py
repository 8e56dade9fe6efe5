"""Business time: when a target of N business minutes falls due, and how much of it is used.

A calendar says which wall-clock ranges of which weekdays are working time, in one IANA time
zone, minus holidays (dates, and a country's public holidays). An instant is working time when
its wall-clock time in that zone lies in a range of its local weekday and its local date is not a
holiday. Daylight-saving changes follow from that definition: a day that loses an hour loses it
from whatever range covered it; a repeated hour counts twice when a range covers it (it is
worked twice). Paused intervals (a ticket waiting on its customer) are never working time.

Everything is computed in UTC over exact intervals, one local date at a time, and tested against
a minute-by-minute reference with hypothesis (tests/sla/test_businesstime.py).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# How far ahead a due time is looked for before the calendar is called empty.
HORIZON = timedelta(days=3 * 366)
# Every offset on Earth lies within ±14 h (plus a margin for historical oddities).
_MAX_OFFSET = timedelta(hours=15)
_STEP = timedelta(hours=1)

Range = tuple[time, time]
Interval = tuple[datetime, datetime]


class CalendarError(ValueError):
    """A calendar that cannot work: no working time at all within the horizon."""


@dataclass(frozen=True)
class Calendar:
    """Working hours per weekday (`hours[0]` is Monday's) as [start, end) wall-clock ranges,
    sorted and disjoint (the service validates input before building one); an end of 24:00 is
    written `time.max`. Holidays: explicit dates plus, with `country`, that country's public
    holidays. Hashable, so a day's working intervals are computed once per process."""

    timezone: str
    hours: tuple[tuple[Range, ...], ...]
    holidays: frozenset[date] = frozenset()
    country: str | None = None
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.hours) != 7:
            raise ValueError("hours has one entry per weekday, Monday first")
        object.__setattr__(self, "_zone", ZoneInfo(self.timezone))

    @classmethod
    def weekly(
        cls,
        timezone: str,
        hours: Mapping[int, Iterable[Range]],
        holidays: Iterable[date] = (),
        country: str | None = None,
    ) -> Calendar:
        return cls(
            timezone,
            tuple(tuple(hours.get(weekday, ())) for weekday in range(7)),
            frozenset(holidays),
            country,
        )

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    def is_holiday(self, day: date) -> bool:
        if day in self.holidays:
            return True
        return self.country is not None and day in _country_holidays(self.country, day.year)


@functools.lru_cache(maxsize=256)
def _country_holidays(country: str, year: int) -> frozenset[date]:
    import holidays  # the package builds every country's rules on import: only when used

    return frozenset(holidays.country_holidays(country, years=year))


def _offset_pieces(
    zone: ZoneInfo, low: datetime, high: datetime
) -> list[tuple[datetime, datetime, timedelta]]:
    """[low, high) split where the zone's UTC offset changes: (start, end, offset) pieces.
    Transitions are found hour by hour, then to the second by bisection (real transitions are
    months apart, so one hour never holds two; they fall on whole seconds)."""

    def offset(instant: datetime) -> timedelta:
        value = instant.astimezone(zone).utcoffset()
        assert value is not None
        return value

    second = timedelta(seconds=1)
    pieces = []
    start, current, probe = low, offset(low), low
    while probe < high:
        step_end = min(probe + _STEP, high)
        # A change in (probe, step_end]; at `high` only one strictly inside counts.
        mark = step_end if step_end < high else high - second
        if offset(mark) == current:
            probe = step_end
            continue
        before, after = probe, mark  # offset(before) is current, after's is not
        while after - before > second:
            middle = before + timedelta(seconds=(after - before) // second // 2)
            if offset(middle) == current:
                before = middle
            else:
                after = middle
        pieces.append((start, after, current))
        start, current, probe = after, offset(after), after
    pieces.append((start, high, current))
    return pieces


@functools.lru_cache(maxsize=4096)
def _working_intervals(calendar: Calendar, day: date) -> tuple[Interval, ...]:
    """The UTC intervals of working time on one local date, sorted."""
    ranges = calendar.hours[day.weekday()]
    if not ranges or calendar.is_holiday(day):
        return ()
    first = datetime.combine(day, time.min)
    last = first + timedelta(days=1)
    window_low = (first - _MAX_OFFSET).replace(tzinfo=UTC)
    window_high = (last + _MAX_OFFSET).replace(tzinfo=UTC)
    pieces = _offset_pieces(calendar.zone, window_low, window_high)
    intervals: list[Interval] = []
    for opens, closes in ranges:
        local_start = datetime.combine(day, opens)
        local_end = last if closes == time.max else datetime.combine(day, closes)
        for piece_start, piece_end, offset in pieces:
            # Instants u of this piece with u + offset in [local_start, local_end).
            low = max((local_start - offset).replace(tzinfo=UTC), piece_start)
            high = min((local_end - offset).replace(tzinfo=UTC), piece_end)
            if low < high:
                intervals.append((low, high))
    return tuple(_merged(sorted(intervals)))


def _merged(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for low, high in intervals:
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def _without(intervals: Iterable[Interval], paused: Sequence[Interval]) -> list[Interval]:
    """`intervals` minus every paused interval (both sorted lists of UTC intervals)."""
    result: list[Interval] = []
    for low, high in intervals:
        pieces = [(low, high)]
        for p_low, p_high in paused:
            if p_high <= low or p_low >= high:
                continue
            cut: list[Interval] = []
            for a, b in pieces:
                if p_low > a:
                    cut.append((a, min(b, p_low)))
                if p_high < b:
                    cut.append((max(a, p_high), b))
            pieces = [(a, b) for a, b in cut if a < b]
        result.extend(pieces)
    return result


def _working_time(
    calendar: Calendar, start: datetime, paused: Sequence[Interval]
) -> Iterator[Interval]:
    """Working UTC intervals from `start` on, in order, paused time removed."""
    if not any(calendar.hours):
        return  # no working hours on any weekday: nothing to walk three years for
    start = start.astimezone(UTC)
    spans = sorted((a.astimezone(UTC), b.astimezone(UTC)) for a, b in paused)
    # A range of the previous local date can reach past midnight UTC: start a day early.
    day = start.astimezone(calendar.zone).date() - timedelta(days=1)
    last_day = (start + HORIZON).date()
    while day <= last_day:
        for low, high in _without(_working_intervals(calendar, day), spans):
            if high > start:
                yield max(low, start), high
        day += timedelta(days=1)


def due_at(
    start: datetime, minutes: float, calendar: Calendar, paused: Sequence[Interval] = ()
) -> datetime:
    """The instant at which `minutes` of working time have passed since `start` (UTC).

    Raises CalendarError when the calendar has no working time within `HORIZON`."""
    if minutes <= 0:
        raise ValueError("minutes must be positive")
    remaining = timedelta(minutes=minutes)
    for low, high in _working_time(calendar, start, paused):
        if high - low >= remaining:
            return low + remaining
        remaining -= high - low
    raise CalendarError("the calendar has no working time within three years")


def working_minutes(
    start: datetime, end: datetime, calendar: Calendar, paused: Sequence[Interval] = ()
) -> float:
    """Minutes of working time in [start, end): how much of a target is used by `end`."""
    end = end.astimezone(UTC)
    used = timedelta()
    if end <= start:
        return 0.0
    for low, high in _working_time(calendar, start, paused):
        if low >= end:
            break
        used += min(high, end) - low
    return used.total_seconds() / 60
