"""Business hours: is the service open at a given moment, and when does it next open."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from allo.tenants.schemas import WEEKDAYS, BusinessHours

# A calendar with no opening in this many days is treated as never open.
SEARCH_DAYS = 400


def _intervals(hours: BusinessHours, local: datetime) -> list[tuple[time, time]]:
    if local.date() in hours.holidays:
        return []
    spans = hours.weekly.get(WEEKDAYS[local.weekday()], [])
    return [(time.fromisoformat(start), time.fromisoformat(end)) for start, end in spans]


def is_open(hours: BusinessHours, at: datetime) -> bool:
    local = at.astimezone(ZoneInfo(hours.timezone))
    return any(start <= local.time() < end for start, end in _intervals(hours, local))


def next_opening(hours: BusinessHours, at: datetime) -> datetime | None:
    """`at` itself when open, else the start of the next opening interval; None if it never opens."""
    zone = ZoneInfo(hours.timezone)
    local = at.astimezone(zone)
    for offset in range(SEARCH_DAYS):
        day = (local + timedelta(days=offset)).date()
        probe = datetime.combine(day, time(12), tzinfo=zone)
        for start, end in sorted(_intervals(hours, probe)):
            opening = datetime.combine(day, start, tzinfo=zone)
            closing = datetime.combine(day, end, tzinfo=zone)
            if offset == 0 and opening <= local < closing:
                return at
            if opening > local:
                return opening
    return None
