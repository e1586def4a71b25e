"""Business hours: is the service open at a given moment, and when does it next open."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

from allo.tenants.schemas import BusinessHours

# A calendar with no opening in this many days is treated as never open.
SEARCH_DAYS = 400


def _intervals(hours: BusinessHours, local: datetime) -> list[tuple[time, time]]:
    """The day's opening intervals, in order."""
    if local.date() in hours.holiday_dates:
        return []
    return hours.opening_times.get(local.weekday(), [])


def is_open(hours: BusinessHours, at: datetime) -> bool:
    local = at.astimezone(hours.zone)
    return any(start <= local.time() < end for start, end in _intervals(hours, local))


def next_opening(hours: BusinessHours, at: datetime) -> datetime | None:
    """`at` itself when open, else the start of the next opening interval; None if it never opens."""
    zone = hours.zone
    local = at.astimezone(zone)
    for offset in range(SEARCH_DAYS):
        day = (local + timedelta(days=offset)).date()
        probe = datetime.combine(day, time(12), tzinfo=zone)
        for start, end in _intervals(hours, probe):
            opening = datetime.combine(day, start, tzinfo=zone)
            closing = datetime.combine(day, end, tzinfo=zone)
            if offset == 0 and opening <= local < closing:
                return at
            if opening > local:
                return opening
    return None


def _open_spans(hours: BusinessHours, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The opening intervals that overlap [start, end), clipped to it, in order."""
    zone = hours.zone
    day = start.astimezone(zone).date() - timedelta(days=1)  # an interval may have begun the day before
    last = end.astimezone(zone).date()
    while day <= last:
        probe = datetime.combine(day, time(12), tzinfo=zone)
        for open_at, close_at in _intervals(hours, probe):
            # In UTC: arithmetic on aware datetimes of one zone ignores a daylight-saving change.
            span_start = max(datetime.combine(day, open_at, tzinfo=zone).astimezone(UTC), start)
            span_end = min(datetime.combine(day, close_at, tzinfo=zone).astimezone(UTC), end)
            if span_start < span_end:
                yield span_start, span_end
        day += timedelta(days=1)


def business_time_between(hours: BusinessHours, start: datetime, end: datetime) -> timedelta:
    """How much of [start, end) the service is open: what an SLA clock counts."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        return timedelta(0)
    return sum((b - a for a, b in _open_spans(hours, start, end)), timedelta(0))


def add_business_time(hours: BusinessHours, start: datetime, amount: timedelta) -> datetime | None:
    """The moment `amount` of opening time after `start` (None if the calendar never opens again)."""
    remaining = amount
    cursor = start
    while remaining > timedelta(0):
        opening = next_opening(hours, cursor)
        if opening is None:
            return None
        zone = hours.zone
        local = opening.astimezone(zone)
        closing = next(
            datetime.combine(local.date(), close_at, tzinfo=zone)
            for open_at, close_at in _intervals(hours, local)
            if datetime.combine(local.date(), open_at, tzinfo=zone)
            <= local
            < datetime.combine(local.date(), close_at, tzinfo=zone)
        )
        opening, closing = opening.astimezone(UTC), closing.astimezone(UTC)
        available = closing - opening
        if remaining <= available:
            return opening + remaining
        remaining -= available
        cursor = closing
    return cursor
