"""Business hours as pure time arithmetic: open or closed, the closed period an instant is in,
and N business minutes after an instant, across weekends, holidays and time zones with and
without daylight saving."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from hub.business_hours import Schedule, ScheduleInvalid, Span, parse_span

WEEKDAYS_9_TO_5 = tuple(Span(d, 9 * 60, 17 * 60) for d in range(5))


def local(zone: str, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=Schedule(zone, ()).tz).astimezone(UTC)  # type: ignore[arg-type,misc]


def test_colombo_friday_afternoon_runs_into_monday() -> None:
    colombo = Schedule("Asia/Colombo", WEEKDAYS_9_TO_5)
    friday = local("Asia/Colombo", 2025, 6, 6, 16, 30)  # 11:00 UTC
    assert colombo.add_business_minutes(friday, 60) == local("Asia/Colombo", 2025, 6, 9, 9, 30)
    assert colombo.add_business_minutes(friday, 30) == local("Asia/Colombo", 2025, 6, 6, 17, 0)
    assert colombo.add_business_minutes(friday, 0) == friday


def test_a_holiday_is_skipped() -> None:
    colombo = Schedule("Asia/Colombo", WEEKDAYS_9_TO_5, frozenset({date(2025, 6, 9)}))
    friday = local("Asia/Colombo", 2025, 6, 6, 16, 30)
    assert colombo.add_business_minutes(friday, 60) == local("Asia/Colombo", 2025, 6, 10, 9, 30)


def test_starting_while_closed_counts_from_the_next_opening() -> None:
    colombo = Schedule("Asia/Colombo", WEEKDAYS_9_TO_5)
    saturday = local("Asia/Colombo", 2025, 6, 7, 12, 0)
    assert colombo.add_business_minutes(saturday, 8 * 60 + 5) == local(
        "Asia/Colombo", 2025, 6, 10, 9, 5
    )


def test_the_same_local_hours_in_another_zone_are_other_instants() -> None:
    london = Schedule("Europe/London", WEEKDAYS_9_TO_5)
    colombo = Schedule("Asia/Colombo", WEEKDAYS_9_TO_5)
    at = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)  # Monday: 13:30 in Colombo, 08:00 in London
    assert colombo.is_open(at)
    assert not london.is_open(at)
    assert london.add_business_minutes(at, 60) == datetime(2025, 1, 6, 10, 0, tzinfo=UTC)


def test_new_york_keeps_local_hours_across_the_spring_change() -> None:
    ny = Schedule("America/New_York", WEEKDAYS_9_TO_5)
    friday = datetime(2025, 3, 7, 21, 0, tzinfo=UTC)  # 16:00 EST
    # Monday 10:00 EDT is 14:00 UTC (UTC-4 after the change on Sunday 9 March)
    assert ny.add_business_minutes(friday, 120) == datetime(2025, 3, 10, 14, 0, tzinfo=UTC)


def test_a_day_of_23_hours_has_23_business_hours() -> None:
    sundays = Schedule("America/New_York", (Span(6, 0, 1440),))
    start = local("America/New_York", 2025, 3, 9, 0, 0)
    # 23 real hours on 9 March, then one more on the next Sunday
    assert sundays.add_business_minutes(start, 24 * 60) == local(
        "America/New_York", 2025, 3, 16, 1, 0
    )


def test_closed_since_is_the_end_of_the_last_opening() -> None:
    colombo = Schedule("Asia/Colombo", WEEKDAYS_9_TO_5)
    saturday = local("Asia/Colombo", 2025, 6, 7, 12, 0)
    sunday = local("Asia/Colombo", 2025, 6, 8, 12, 0)
    friday_close = local("Asia/Colombo", 2025, 6, 6, 17, 0)
    assert colombo.closed_since(saturday) == friday_close == colombo.closed_since(sunday)
    assert colombo.closed_since(local("Asia/Colombo", 2025, 6, 6, 12, 0)) is None
    assert colombo.closed_since(local("Asia/Colombo", 2025, 6, 9, 8, 0)) == friday_close
    assert colombo.closed_since(local("Asia/Colombo", 2025, 6, 9, 18, 0)) == local(
        "Asia/Colombo", 2025, 6, 9, 17, 0
    )


def test_invalid_schedules_are_refused() -> None:
    with pytest.raises(ScheduleInvalid) as bad_zone:
        Schedule("Mars/Olympus", ())
    assert bad_zone.value.path == "time_zone"
    with pytest.raises(ScheduleInvalid):
        Schedule("Asia/Colombo", (Span(0, 540, 720), Span(0, 700, 800)))
    with pytest.raises(ScheduleInvalid) as backwards:
        parse_span("mon", "17:00", "09:00", 2)
    assert backwards.value.path == "spans[2].close"
    with pytest.raises(ScheduleInvalid):
        Schedule("Asia/Colombo", ()).add_business_minutes(datetime.now(UTC), 1)
