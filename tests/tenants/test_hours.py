"""Business hours: open or closed, the next opening, and the time an SLA clock counts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from allo.tenants.hours import add_business_time, business_time_between, is_open, next_opening
from allo.tenants.schemas import BusinessHours

PARIS = ZoneInfo("Europe/Paris")
# Monday to Friday 09:00–12:00 and 14:00–18:00, Saturday morning; 2026-11-23 is a Monday.
HOURS = BusinessHours(
    timezone="Europe/Paris",
    weekly={
        **{d: [("09:00", "12:00"), ("14:00", "18:00")] for d in ("mon", "tue", "wed", "thu", "fri")},
        "sat": [("09:00", "12:00")],
    },
    holidays=[date(2026, 12, 25)],
)


def paris(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


def test_open_and_closed() -> None:
    assert is_open(HOURS, paris(2026, 11, 23, 10, 0))
    assert not is_open(HOURS, paris(2026, 11, 23, 12, 30))  # lunch
    assert not is_open(HOURS, paris(2026, 11, 22, 10, 0))  # Sunday
    assert not is_open(HOURS, paris(2026, 12, 25, 10, 0))  # holiday
    assert is_open(HOURS, paris(2026, 11, 23, 10, 0).astimezone(UTC))  # any zone in, same answer


def test_next_opening() -> None:
    at = paris(2026, 11, 23, 10, 0)
    assert next_opening(HOURS, at) == at
    assert next_opening(HOURS, paris(2026, 11, 23, 12, 30)) == paris(2026, 11, 23, 14, 0)
    assert next_opening(HOURS, paris(2026, 11, 28, 13, 0)) == paris(2026, 11, 30, 9, 0)  # Sat pm → Mon
    assert next_opening(HOURS, paris(2026, 12, 24, 19, 0)) == paris(2026, 12, 26, 9, 0)  # over Christmas
    assert next_opening(BusinessHours(weekly={}), paris(2026, 11, 23, 10, 0)) is None


def test_business_time_skips_nights_lunches_weekends_and_holidays() -> None:
    assert business_time_between(HOURS, paris(2026, 11, 23, 11, 0), paris(2026, 11, 23, 15, 0)) == timedelta(
        hours=2
    )
    # Friday 17:00 → Monday 10:00: one hour on Friday, Saturday's three, one on Monday.
    assert business_time_between(HOURS, paris(2026, 11, 27, 17, 0), paris(2026, 11, 30, 10, 0)) == timedelta(
        hours=5
    )
    assert business_time_between(HOURS, paris(2026, 11, 23, 15, 0), paris(2026, 11, 23, 11, 0)) == timedelta(
        0
    )


def test_adding_business_time() -> None:
    # Four working hours from Monday 11:00: one before lunch, three after.
    assert add_business_time(HOURS, paris(2026, 11, 23, 11, 0), timedelta(hours=4)) == paris(
        2026, 11, 23, 17, 0
    )
    # From Friday evening, closed: the clock starts on Saturday morning.
    assert add_business_time(HOURS, paris(2026, 11, 27, 20, 0), timedelta(hours=4)) == paris(
        2026, 11, 30, 10, 0
    )
    assert add_business_time(BusinessHours(weekly={}), paris(2026, 11, 23, 10, 0), timedelta(hours=1)) is None


def test_daylight_saving_change_is_counted_in_real_time() -> None:
    # 2026-10-25: Paris goes from UTC+2 to UTC+1 at 03:00. Open all day on Sundays for this calendar.
    hours = BusinessHours(timezone="Europe/Paris", weekly={"sun": [("00:00", "23:59")]})
    start, end = paris(2026, 10, 25, 1, 0), paris(2026, 10, 25, 5, 0)
    assert business_time_between(hours, start, end) == timedelta(hours=5)  # 4 wall-clock hours, 5 real
    assert add_business_time(hours, start, timedelta(hours=5)) == end.astimezone(UTC)


def test_round_trip_between_adding_and_measuring() -> None:
    start = paris(2026, 11, 26, 16, 30)
    for minutes in (1, 59, 90, 240, 600, 2880):
        due = add_business_time(HOURS, start, timedelta(minutes=minutes))
        assert due is not None
        assert business_time_between(HOURS, start, due) == timedelta(minutes=minutes)


def test_a_calendar_opens_again_unless_it_has_no_hours_or_holidays_cover_them() -> None:
    from allo.tenants.hours import opens_again

    assert opens_again(HOURS, paris(2026, 12, 24, 20, 0))  # Christmas is a holiday; the 26th is open
    assert not opens_again(BusinessHours(weekly={}), paris(2026, 11, 23, 10, 0))
    # Saturdays only, and every Saturday of the next 400 days a holiday.
    first = date(2026, 11, 28)
    saturdays = [first + timedelta(weeks=n) for n in range(60)]
    only_holidays = BusinessHours(weekly={"sat": [("09:00", "12:00")]}, holidays=saturdays)
    assert not opens_again(only_holidays, paris(2026, 11, 23, 10, 0))
    assert next_opening(only_holidays, paris(2026, 11, 23, 10, 0)) is None
    assert opens_again(only_holidays, paris(2028, 1, 10, 10, 0))  # after the last holiday
