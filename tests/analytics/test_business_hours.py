"""Response and resolution times in business hours: only the seconds the conversation's inbox was
open count (holidays closed, clock changes as zoneinfo has them); an inbox without business hours
counts every second. The same answers from the event tables and from the pre-aggregated rows, and
against a plain Python count over ``Schedule.intervals`` on random waits and schedules."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from analytics import business_time, reports, rollups
from analytics.backend import Backend
from analytics.rows import ConversationRow, MessageRow, Rows
from analytics.store import AnalyticsStore
from hub.app import Hub
from hub.business_hours import Schedule, Span
from tests.analytics.test_pipeline import _backend

pytestmark = pytest.mark.postgres

COLOMBO = ZoneInfo("Asia/Colombo")
WEEKDAYS_9_TO_6 = tuple(Span(d, 9 * 60, 18 * 60) for d in range(5))


@pytest.fixture
def rebuilds_by_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub's workers rebuild no day while the test runs: it says when."""
    from analytics import part

    monkeypatch.setattr(part, "REBUILD_EVERY_S", 3600.0)


def _conversation(
    rows: Rows, account: str, n: int, inbox: str, opened: datetime, answered: datetime, agent: str
) -> None:
    """Created at ``opened``; answered and resolved at ``answered``; a week later the customer
    writes again (a wait), answered a week after ``answered``."""
    cid = f"conv-{n}"

    def conv(kind: str, at: datetime, assignee: str = "") -> None:
        status = "resolved" if kind == "resolved" else "open"
        rows.conversation_events.append(
            ConversationRow(f"{cid}-{kind}", account, at, cid, inbox, "api", kind, status,
                            assignee, "c", "c")
        )  # fmt: skip

    def msg(key: str, at: datetime, direction: str) -> None:
        who = agent if direction == "outbound" else ""
        rows.messages.append(
            MessageRow(f"{cid}-{key}", account, at, cid, inbox, "api", direction, 0, who, "c",
                       f"{cid}-{key}")
        )  # fmt: skip

    conv("created", opened)
    msg("in", opened, "inbound")
    msg("out", answered, "outbound")
    conv("resolved", answered, agent)
    # the next wait: from a customer's message after the reply to the next reply
    week = timedelta(days=7)
    msg("in2", opened + week, "inbound")
    msg("out2", answered + week, "outbound")


def _reference(schedule: Schedule | None, a: datetime, b: datetime) -> float:
    """Open seconds in [a, b]: every open interval of every local date around them, summed."""
    if schedule is None:
        return (b - a).total_seconds()
    total = 0.0
    day = a.astimezone(schedule.tz).date() - timedelta(days=1)
    while day <= b.astimezone(schedule.tz).date() + timedelta(days=1):
        for s, e in schedule.intervals(day):
            total += max(0.0, (min(e, b) - max(s, a)).total_seconds())
        day += timedelta(days=1)
    return total


async def _times(
    backend: Backend, scope: reports.Scope, which: str, by: reports.GroupBy = "agent"
) -> dict[str, float]:
    fn = {
        "first_response": reports.first_response,
        "next_response": reports.next_response,
        "resolution": reports.resolution,
    }[which]
    return {str(k): float(q[0]) for k, n, q, _ in await fn(backend, scope, by)}


async def _all(backend: Backend, scope: reports.Scope) -> dict[str, dict[str, float]]:
    return {w: await _times(backend, scope, w) for w in reports_times()}


def reports_times() -> tuple[str, ...]:
    return ("first_response", "next_response", "resolution")


async def test_a_friday_evening_wait_answered_monday_morning_is_one_business_hour(
    rebuilds_by_the_test: None, hub: Hub
) -> None:
    backend = _backend(hub)
    account = f"acc-{uuid.uuid4().hex[:8]}"
    friday = datetime(2025, 3, 7, 17, 30, tzinfo=COLOMBO)  # a Friday, 30 minutes to closing
    monday = datetime(2025, 3, 10, 9, 30, tzinfo=COLOMBO)
    tuesday = datetime(2025, 3, 11, 9, 30, tzinfo=COLOMBO)
    rows = Rows()
    _conversation(rows, account, 1, "in-office", friday, monday, "agent-office")
    _conversation(rows, account, 2, "in-holiday", friday, tuesday, "agent-holiday")
    _conversation(rows, account, 3, "in-always", friday, monday, "agent-always")
    await AnalyticsStore(backend).write(rows)
    office = Schedule("Asia/Colombo", WEEKDAYS_9_TO_6)
    schedules = {
        "in-office": office,
        # Mondays 10 and 17 March closed: Friday's half hour and Tuesday's first half hour
        "in-holiday": Schedule(
            "Asia/Colombo", WEEKDAYS_9_TO_6, frozenset({date(2025, 3, 10), date(2025, 3, 17)})
        ),
    }
    span = (datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC))
    calendar = reports.Scope(account, *span, "Asia/Colombo")
    business = reports.Scope(account, *span, "Asia/Colombo", schedules=schedules)

    raw_calendar, raw_business = await _all(backend, calendar), await _all(backend, business)
    assert raw_calendar["first_response"] == {
        "agent-office": 64 * 3600.0,
        "agent-holiday": 88 * 3600.0,
        "agent-always": 64 * 3600.0,
    }
    for which in reports_times():  # the resolution and the next wait (a week on) alike
        assert raw_business[which] == {
            "agent-office": 3600.0,
            "agent-holiday": 3600.0,
            "agent-always": 64 * 3600.0,  # no business hours: every second counts
        }, which
    # without the holiday Tuesday's wait would hold all of Monday
    no_holiday = reports.Scope(account, *span, "UTC", schedules={"in-holiday": office})
    assert (await _times(backend, no_holiday, "first_response"))["agent-holiday"] == 10 * 3600.0
    by_inbox = await _times(backend, business, "first_response", "inbox")
    assert by_inbox == {"in-office": 3600.0, "in-holiday": 3600.0, "in-always": 64 * 3600.0}

    # the same from the pre-aggregated rows once the days are rebuilt (the schedules are read
    # at query time, never stored in them)
    await rollups.rebuild(backend, rollups.days_between(date(2025, 3, 1), date(2025, 3, 31)))
    assert not await rollups.dirty_days(backend, date(2025, 3, 1), date(2025, 3, 31))
    assert await _all(backend, business) == raw_business
    assert await _all(backend, calendar) == raw_calendar
    # a changed schedule applies at once, with no rebuild: open around the clock on weekdays
    changed = {"in-office": Schedule("Asia/Colombo", tuple(Span(d, 0, 1440) for d in range(5)))}
    after = await _times(backend, reports.Scope(account, *span, "UTC", schedules=changed),
                         "first_response")  # fmt: skip
    # Friday 17:30 to midnight and Monday to 09:30
    assert after["agent-office"] == 6.5 * 3600 + 9.5 * 3600


async def test_a_set_dropped_under_a_trusting_process_is_made_again_not_read_as_zeros(
    hub: Hub,
) -> None:
    """A process trusts a set it found complete for a minute; if the set is gone meanwhile (in
    any order of schedule changes and drops), the report's query fails on it and the report
    makes it again, never counting from a partial set."""
    backend = _backend(hub)
    account = f"acc-{uuid.uuid4().hex[:8]}"
    friday = datetime(2025, 3, 7, 17, 30, tzinfo=COLOMBO)
    monday = datetime(2025, 3, 10, 9, 30, tzinfo=COLOMBO)
    rows = Rows()
    _conversation(rows, account, 1, "in-office", friday, monday, "agent-office")
    await AnalyticsStore(backend).write(rows)
    span = (datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC))
    scope = reports.Scope(
        account, *span, "Asia/Colombo",
        schedules={"in-office": Schedule("Asia/Colombo", WEEKDAYS_9_TO_6)},
    )  # fmt: skip
    assert await _times(backend, scope, "first_response") == {"agent-office": 3600.0}
    for cut in ("k > 1 OR day % 2 = 0", "1"):  # part of the set, then all of it
        await backend.execute(
            f"ALTER TABLE {backend.database}.{business_time.TABLE} DELETE"
            f" WHERE account_id = {{account:String}} AND ({cut}) SETTINGS mutations_sync = 2",
            {"account": account},
        )
        assert await _times(backend, scope, "first_response") == {"agent-office": 3600.0}


ZONES = ["Europe/London", "America/New_York", "Asia/Colombo", "Australia/Lord_Howe", "UTC"]


def _random_schedule(rng: random.Random, zone: str) -> Schedule:
    spans = []
    for d in range(7):
        if rng.random() < 0.25:
            continue
        start = rng.randrange(0, 20) * 60 + rng.choice((0, 30))
        end = min(1440, start + rng.randrange(1, 10) * 60)
        spans.append(Span(d, start, end))
        if end < 1380 and rng.random() < 0.3:  # a second span after a break
            spans.append(Span(d, end + 30, min(1440, end + 30 + rng.randrange(1, 4) * 60)))
    if not spans:
        spans.append(Span(0, 540, 1020))
    holidays = frozenset(date(2025, 3, 1) + timedelta(days=rng.randrange(60)) for _ in range(3))
    return Schedule(zone, tuple(spans), holidays)


async def test_business_seconds_equal_a_python_count_over_the_schedule(
    rebuilds_by_the_test: None, hub: Hub
) -> None:
    """Random waits (minutes to weeks: first response and resolution, all in the range) over
    random schedules in zones with clock changes (London and New York in March, Lord Howe's
    half-hour shift in April), with holidays; one inbox unscheduled."""
    backend = _backend(hub)
    rng = random.Random(25)
    account = f"acc-{uuid.uuid4().hex[:8]}"
    inboxes = {f"inbox-{i}": ZONES[i % len(ZONES)] for i in range(12)}
    schedules = {i: _random_schedule(rng, z) for i, z in inboxes.items() if i != "inbox-11"}
    rows, expected, calendar = Rows(), {}, {}
    base = datetime(2025, 3, 1, tzinfo=UTC)
    for n in range(300):
        inbox = rng.choice(sorted(inboxes))
        opened = base + timedelta(
            seconds=rng.randrange(40 * 86400), milliseconds=rng.randrange(1000)
        )
        waited = timedelta(seconds=rng.choice((rng.randrange(3600), rng.randrange(20 * 86400))))
        agent = f"agent-{n}"
        _conversation(rows, account, n, inbox, opened, opened + waited, agent)
        expected[agent] = _reference(schedules.get(inbox), opened, opened + waited)
        calendar[agent] = waited.total_seconds()
    await AnalyticsStore(backend).write(rows)
    scope = reports.Scope(
        account, base, base + timedelta(days=61), "Europe/London", schedules=schedules
    )
    closed_waits = [a for a, v in expected.items() if v == 0]
    assert len(closed_waits) < len(expected) / 2, "most waits hold open seconds"
    assert sum(v < calendar[a] - 1 for a, v in expected.items()) > len(expected) / 2
    assert any(v == calendar[a] for a, v in expected.items() if a not in closed_waits)

    def check(found: dict[str, float]) -> None:
        assert found.keys() == expected.keys()
        wrong = {
            a: (found[a], expected[a]) for a in expected if abs(found[a] - expected[a]) > 0.002
        }
        assert not wrong

    for which in ("first_response", "resolution"):
        check(await _times(backend, scope, which))
    await rollups.rebuild(backend, rollups.days_between(date(2025, 3, 1), date(2025, 5, 1)))
    for which in ("first_response", "resolution"):
        check(await _times(backend, scope, which))
