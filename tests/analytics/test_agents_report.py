"""The agents report's new measures on hand-made events with answers worked out by hand: online
and busy seconds within a range (spans clipped to the range and to now; the status at the range's
start from the change before it), the mean handling time (from the later of the latest opening and
the latest assignment to the resolving agent), the same from the rollups as from the event
tables, and presence events reaching the table through the consumer's rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from analytics import reports, rollups
from analytics.rows import ConversationRow, MessageRow, PresenceRow, Rows, build_rows
from analytics.store import AnalyticsStore
from hub.app import Hub
from hub.events import Actor, ActorKind, Event, Payload, make_event
from hub.events.types import AgentPresenceChanged
from tests.analytics.test_pipeline import _backend

pytestmark = pytest.mark.postgres

D = datetime(2025, 3, 10, tzinfo=UTC)  # a Monday, midnight UTC


def _at(hours: float) -> datetime:
    return D + timedelta(hours=hours)


def _presence(account: str, agent: str, *changes: tuple[float, str]) -> list[PresenceRow]:
    return [
        PresenceRow(f"{agent}-{i}", account, _at(h), "", "", "", agent, status)
        for i, (h, status) in enumerate(changes)
    ]


def _conv(account: str, conv: str, kind: str, hours: float, assignee: str = "") -> ConversationRow:
    return ConversationRow(
        f"{conv}-{kind}-{hours}", account, _at(hours), conv, "inbox-1", "api", kind,
        "resolved" if kind == "resolved" else "open", assignee, "", "", "",
    )  # fmt: skip


def _reply(account: str, conv: str, hours: float, agent: str) -> MessageRow:
    return MessageRow(
        f"{conv}-r-{hours}", account, _at(hours), conv, "inbox-1", "api", "outbound", 0, agent, "",
        f"m-{conv}-{hours}",
    )  # fmt: skip


async def test_online_busy_and_handling_time_over_a_range(hub: Hub) -> None:
    backend = _backend(hub)
    account = f"acc-{uuid.uuid4().hex[:8]}"
    rows = Rows()
    # ann: online the evening before (so online when the range starts), busy 10:00-10:30,
    # online again, offline at 17:00; the next day online from 09:00 and still online now
    rows.agent_presence += _presence(
        account, "ann", (-7, "online"), (10, "busy"), (10.5, "online"), (17, "offline"),
        (33, "online"),
    )  # fmt: skip
    # ben: online 08:00-12:00 only, an unchanged status written twice (a replay: same event)
    ben = _presence(account, "ben", (8, "online"), (12, "offline"))
    rows.agent_presence += ben + ben[:1]
    # c1: opened 09:00, assigned to ann 09:30, to ben 10:00, back to ann 11:00, resolved by ann
    # 13:00: handling from 11:00, 2 h. c2: opened 09:00, resolved by ann 10:00, reopened 12:00,
    # resolved by ann 12:30 (never assigned to her: from the reopening), 1 h and 0.5 h.
    rows.conversation_events += [
        _conv(account, "c1", "created", 9),
        _conv(account, "c1", "assigned", 9.5, "ann"),
        _conv(account, "c1", "assigned", 10, "ben"),
        _conv(account, "c1", "assigned", 11, "ann"),
        _conv(account, "c1", "resolved", 13, "ann"),
        _conv(account, "c2", "created", 9),
        _conv(account, "c2", "resolved", 10, "ann"),
        _conv(account, "c2", "reopened", 12),
        _conv(account, "c2", "resolved", 12.5, "ann"),
        # a resolution whose opening the store never saw: counted, but not timed
        _conv(account, "c3", "resolved", 14, "ben"),
    ]
    rows.messages += [
        _reply(account, "c1", 9.6, "ann"),
        _reply(account, "c1", 11.5, "ann"),
        _reply(account, "c2", 9.7, "ann"),
        _reply(account, "c1", 10.2, "ben"),
    ]
    store = AnalyticsStore(backend)
    await store.write(rows)
    # the first day in Asia/Colombo (+05:30): 2025-03-09 18:30 to 2025-03-10 18:30 UTC
    day = reports.Scope(account, _at(-5.5), _at(18.5), "Asia/Colombo")
    now = _at(40)
    expected = [
        # agent, handled, replies, resolutions, mean handling, online s, busy s
        ["ann", 2, 3, 3, (2 + 1 + 0.5) * 3600 / 3, (15.5 + 6.5) * 3600, 0.5 * 3600],
        ["ben", 1, 1, 1, None, 4 * 3600.0, 0.0],
    ]
    assert await reports.agents(backend, day, now=now) == expected
    # ann's second day: online from 09:00 to now (16:00 UTC the next day is "now")
    second = reports.Scope(account, _at(24), _at(48), "UTC")
    assert await reports.agents(backend, second, now=now) == [
        ["ann", 0, 0, 0, None, 7 * 3600.0, 0.0]
    ]
    # a range inside ann's busy spell; ben filtered out
    inside = reports.Scope(account, _at(10.25), _at(10.75), "UTC", agent_id="ann")
    assert await reports.agents(backend, inside, now=now) == [
        ["ann", 0, 0, 0, None, 0.25 * 3600, 0.25 * 3600]
    ]
    # an inbox's view lists only the agents with activity there (presence is per agent)
    other_inbox = reports.Scope(account, _at(-5.5), _at(18.5), "UTC", inbox_id="inbox-2")
    assert await reports.agents(backend, other_inbox, now=now) == []

    # the same from the rollups: the whole UTC day 2025-03-10 is clean once rebuilt
    await rollups.rebuild(backend, [D.date()], before=(D + timedelta(days=1)).date())
    assert not await rollups.dirty_days(backend, D.date(), D.date())
    whole = reports.Scope(account, D, D + timedelta(days=1), "UTC")
    rolled = await backend.query(
        f"SELECT sum(replies), sum(resolutions) FROM {backend.database}.agent_days "
        "WHERE account_id = {a:String}",
        {"a": account},
    )
    assert [int(v) for v in rolled[0]] == [4, 4]
    found = await reports.agents(backend, whole, now=now)
    assert [r[:5] for r in found] == [r[:5] for r in expected]
    assert await reports.agents(backend, day, now=now) == expected


async def test_presence_events_become_rows() -> None:
    event: Event[Payload] = make_event(
        AgentPresenceChanged(agent_id="ann", status="busy", previous="online"),
        account_id="acc",
        conversation_id=None,
        actor=Actor(ActorKind.AGENT, "ann"),
    )
    rows = build_rows([event], {})
    assert [(r.event_id, r.agent_id, r.status) for r in rows.agent_presence] == [
        (event.id, "ann", "busy")
    ]
    assert rows.moments() == [], "presence is read raw: no rollup day to mark"
