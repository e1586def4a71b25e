"""Business hours: is the service open at a given moment, and when does it next open.

Every question is answered from each day's opening intervals as UTC instants (`_day_spans`), worked out
once per day and policy: arithmetic on aware datetimes of one zone would ignore a daylight-saving change,
and the SLA clocks of a ticket list ask these questions a hundred times a page.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from allo.tenants.schemas import BusinessHours

# A calendar with no opening in this many days is treated as never open.
SEARCH_DAYS = 400
_ONE_DAY = timedelta(days=1)
_DAYS_KEPT = 4096


def _day_spans(hours: BusinessHours, day: date) -> list[tuple[datetime, datetime]]:
    """The opening intervals of a local calendar day, as UTC instants, in order."""
    known = hours.utc_spans
    spans = known.get(day)
    if spans is None:
        zone = hours.zone
        spans = (
            []
            if day in hours.holiday_dates
            else [
                (
                    datetime.combine(day, open_at, tzinfo=zone).astimezone(UTC),
                    datetime.combine(day, close_at, tzinfo=zone).astimezone(UTC),
                )
                for open_at, close_at in hours.opening_times.get(day.weekday(), [])
            ]
        )
        if len(known) >= _DAYS_KEPT:
            known.clear()
        known[day] = spans
    return spans


def _local_day(hours: BusinessHours, at: datetime) -> date:
    return at.astimezone(hours.zone).date()


def is_open(hours: BusinessHours, at: datetime) -> bool:
    at = at.astimezone(UTC)
    return any(start <= at < end for start, end in _day_spans(hours, _local_day(hours, at)))


def next_opening(hours: BusinessHours, at: datetime) -> datetime | None:
    """`at` itself when open, else the start of the next opening interval (in the calendar's zone);
    None if it never opens."""
    original, at = at, at.astimezone(UTC)
    day = _local_day(hours, at)
    for _ in range(SEARCH_DAYS):
        for start, end in _day_spans(hours, day):
            if start <= at < end:
                return original
            if start > at:
                return start.astimezone(hours.zone)
        day += _ONE_DAY
    return None


def opens_again(hours: BusinessHours, at: datetime) -> bool:
    """Whether the calendar opens at or after `at`: at once when it has opening hours and no holiday to
    come (the week brings them back), else by looking."""
    if not hours.opening_times:
        return False
    if not hours.holiday_dates or max(hours.holiday_dates) < _local_day(hours, at):
        return True
    return next_opening(hours, at) is not None


def business_time_between(hours: BusinessHours, start: datetime, end: datetime) -> timedelta:
    """How much of [start, end) the service is open: what an SLA clock counts."""
    # In UTC: the difference of two datetimes of one zone is their wall clocks' (a daylight-saving change
    # would be lost).
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        return timedelta(0)
    total = timedelta(0)
    # A day's intervals lie within that day (each ends after it starts): none before start's day counts.
    day, last = _local_day(hours, start), _local_day(hours, end)
    while day <= last:
        for open_at, close_at in _day_spans(hours, day):
            if open_at < end and close_at > start:
                total += min(close_at, end) - max(open_at, start)
        day += _ONE_DAY
    return total


def add_business_time(hours: BusinessHours, start: datetime, amount: timedelta) -> datetime | None:
    """The moment `amount` of opening time after `start` (None if the calendar never opens again)."""
    remaining = amount
    if remaining <= timedelta(0):
        return start
    start = start.astimezone(UTC)
    day = _local_day(hours, start)
    closed_days = 0
    while closed_days <= SEARCH_DAYS:
        counted = False
        for open_at, close_at in _day_spans(hours, day):
            if close_at <= start:
                continue
            counted = True
            begin = max(open_at, start)
            available = close_at - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        closed_days = 0 if counted else closed_days + 1
        day += _ONE_DAY
    return None
