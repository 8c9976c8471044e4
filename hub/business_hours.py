"""Business hours of an inbox: weekly spans in its IANA time zone, and holidays (whole local
dates, closed). Pure functions over a :class:`Schedule`: whether an instant is open, when the
closed period around an instant began (the out-of-office reply's once-per-period key), and an
instant plus N business minutes (the SLA clocks).

Spans are local wall-clock times; they become real instants through ``zoneinfo`` day by day, so a
day on which clocks change keeps its local opening hours and business minutes are real elapsed
minutes.
"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: how far the search for an open span goes (a schedule open once a year still works)
MAX_DAYS = 400


class ScheduleInvalid(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


@dataclasses.dataclass(frozen=True)
class Span:
    day: int  # 0 Monday … 6 Sunday
    start: int  # minutes after local midnight
    end: int  # minutes after local midnight, up to 1440 (the end of the day)


def _minutes(text: str, path: str) -> int:
    if text == "24:00":
        return 1440
    try:
        parsed = time.fromisoformat(text)
    except ValueError as exc:
        raise ScheduleInvalid(path, "a time of day is HH:MM (00:00 to 24:00)") from exc
    if parsed.second or parsed.microsecond or parsed.tzinfo is not None:
        raise ScheduleInvalid(path, "a time of day is HH:MM (00:00 to 24:00)")
    return parsed.hour * 60 + parsed.minute


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleInvalid("time_zone", f"{name!r} is not an IANA time zone") from exc


def parse_span(day: str, opens: str, closes: str, index: int) -> Span:
    path = f"spans[{index}]"
    if day not in DAYS:
        raise ScheduleInvalid(f"{path}.day", f"day is one of {', '.join(DAYS)}")
    start = _minutes(opens, f"{path}.open")
    end = _minutes(closes, f"{path}.close")
    if start >= 1440 or end <= start:
        raise ScheduleInvalid(f"{path}.close", "close must be after open on the same day")
    return Span(DAYS.index(day), start, end)


@dataclasses.dataclass(frozen=True)
class Schedule:
    time_zone: str
    spans: tuple[Span, ...]
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        zone(self.time_zone)
        ordered = sorted(self.spans, key=lambda s: (s.day, s.start))
        for a, b in itertools.pairwise(ordered):
            if a.day == b.day and b.start < a.end:
                raise ScheduleInvalid("spans", f"spans overlap on {DAYS[a.day]}")

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.time_zone)

    def intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The open intervals of one local date, as UTC instants, in order."""
        if day in self.holidays:
            return []
        found = []
        for span in sorted(self.spans, key=lambda s: s.start):
            if span.day == day.weekday():
                start, end = self._instant(day, span.start), self._instant(day, span.end)
                if end > start:
                    found.append((start, end))
        return found

    def _instant(self, day: date, minute: int) -> datetime:
        """A local wall-clock time of a date as a UTC instant (1440: the next midnight)."""
        if minute == 1440:
            day, minute = day + timedelta(days=1), 0
        local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self.tz)
        return local.astimezone(UTC)

    def _local_day(self, at: datetime) -> date:
        return at.astimezone(self.tz).date()

    def is_open(self, at: datetime) -> bool:
        day = self._local_day(at)
        return any(s <= at < e for s, e in self.intervals(day))

    def closed_since(self, at: datetime) -> datetime | None:
        """When the closed period holding ``at`` began (the end of the last open interval);
        ``None`` when ``at`` is open, or nothing was open in the last ``MAX_DAYS`` days."""
        if self.is_open(at):
            return None
        day = self._local_day(at)
        for back in range(MAX_DAYS):
            ends = [e for _, e in self.intervals(day - timedelta(days=back)) if e <= at]
            if ends:
                return max(ends)
        return None

    def add_business_minutes(self, start: datetime, minutes: float) -> datetime:
        """The instant ``minutes`` business minutes after ``start`` (``start`` itself for 0;
        counting begins at the next opening when ``start`` is closed)."""
        left = timedelta(minutes=minutes)
        day = self._local_day(start)
        for ahead in range(MAX_DAYS):
            for s, e in self.intervals(day + timedelta(days=ahead)):
                s = max(s, start)
                if e <= s:
                    continue
                if s + left <= e:
                    return s + left
                left -= e - s
        raise ScheduleInvalid("spans", "the schedule is never open")


def always_open(at: datetime, minutes: float) -> datetime:
    """Without business hours every minute counts."""
    return at + timedelta(minutes=minutes)
