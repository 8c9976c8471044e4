"""The consumer's promises: an event written twice counts once (a crash mid-batch, then the
replay), and an unreachable store is retried until the consumer catches up, while the hub keeps
working and ``/readyz`` and ``/metrics`` show it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient

from analytics import reports
from analytics.backend import AnalyticsUnavailable, Backend, Params
from analytics.part import AnalyticsConsumer, AnalyticsPart
from analytics.store import AnalyticsStore
from hub.app import Hub
from hub.bus import BusMessage
from hub.events.envelope import Actor, ActorKind, Event, Payload, encode_event, make_event
from hub.events.types import (
    CallAnswered,
    CallDirection,
    CallEnded,
    CallRinging,
    CallVoicemail,
    ContactErased,
    ConversationCreated,
    ConversationPatch,
    ConversationState,
    ConversationStatus,
    ConversationUpdated,
    MessageCreated,
    MessageReceived,
)
from tests.analytics.test_reports import _inbox, _post, _range, _settle
from tests.api.admin_support import call

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


class DiesAfter:
    """The real store, but the process "dies" after ``inserts`` inserts (then refuses)."""

    def __init__(self, inner: Backend, inserts: int) -> None:
        self.inner = inner
        self.database = inner.database
        self.kind = inner.kind
        self.left = inserts

    async def execute(self, sql: str, params: Params | None = None) -> None:
        await self.inner.execute(sql, params)

    async def insert(self, table: str, rows: bytes, count: int) -> None:
        if self.left <= 0:
            raise AnalyticsUnavailable("the store went away mid-batch")
        self.left -= 1
        await self.inner.insert(table, rows, count)

    async def query(self, sql: str, params: Params | None = None) -> list[list[Any]]:
        return await self.inner.query(sql, params)

    async def close(self) -> None:
        pass


def _backend(hub: Hub) -> Backend:
    part = hub.part("analytics")
    assert isinstance(part, AnalyticsPart) and part.store is not None
    return part.store.backend


def _events(account: str, conversations: int) -> list[Event[Payload]]:
    agent, contact = Actor(ActorKind.AGENT, "agent-1"), Actor(ActorKind.CONTACT, "contact-1")
    made: list[Event[Payload]] = []
    for i in range(conversations):
        conv, at = f"conv-{i}", T0 + timedelta(minutes=i)

        def add(
            payload: Payload, actor: Actor, seconds: float, conv: str = conv, at: datetime = at
        ) -> None:
            made.append(
                make_event(
                    payload,
                    account_id=account,
                    conversation_id=conv,
                    actor=actor,
                    occurred_at=at + timedelta(seconds=seconds),
                )
            )

        opened = ConversationState(status=ConversationStatus.OPEN)
        add(ConversationCreated(inbox_id="inbox-1", contact_id=f"c-{i}", state=opened), contact, 0)
        add(
            MessageReceived(
                message_id=f"m-{i}", inbox_id="inbox-1", contact_id=f"c-{i}", channel="api",
                provider_message_id=f"p-{i}", content="hi",
            ),
            contact,
            0,
        )  # fmt: skip
        add(MessageCreated(message_id=f"r-{i}", inbox_id="inbox-1", sender_id="agent-1",
                           content="hello"), agent, 60 * (i + 1))  # fmt: skip
        resolved = ConversationState(status=ConversationStatus.RESOLVED, assignee_id="agent-1")
        add(
            ConversationUpdated(
                inbox_id="inbox-1", state=resolved,
                previous=ConversationPatch(status=ConversationStatus.OPEN),
            ),
            agent,
            600,
        )  # fmt: skip
        call_id = f"call-{i}"
        add(CallRinging(call_id=call_id, inbox_id="inbox-1", direction=CallDirection.INBOUND,
                        number="+94770000000"), contact, 0)  # fmt: skip
        if i % 3 == 0:
            add(CallAnswered(call_id=call_id, inbox_id="inbox-1", by="agent",
                             agent_id="agent-1"), contact, 5)  # fmt: skip
        elif i % 3 == 1:
            add(CallVoicemail(call_id=call_id, inbox_id="inbox-1", reason="no_answer"),
                contact, 5)  # fmt: skip
        add(CallEnded(call_id=call_id, inbox_id="inbox-1", answered=i % 3 == 0,
                      duration_s=30.0 if i % 3 == 0 else 0.0, hangup_cause="200 OK",
                      ended_by="contact"), contact, 35)  # fmt: skip
    return made


def _batch(events: list[Event[Payload]]) -> list[BusMessage]:
    return [
        BusMessage("conversations", e.key, encode_event(e), 0, n, {"event_id": e.id})
        for n, e in enumerate(events)
    ]


async def test_a_replay_after_a_crash_mid_batch_counts_once(hub: Hub) -> None:
    backend = _backend(hub)
    events = _events(hub.account_id, conversations=9)
    batch = _batch(events)
    dying = AnalyticsConsumer(AnalyticsStore(DiesAfter(backend, inserts=1)), hub.pool)
    with pytest.raises(AnalyticsUnavailable):
        await dying.handle(batch)  # messages written, then the store went away
    consumer = AnalyticsConsumer(AnalyticsStore(backend), hub.pool)
    await consumer.handle(batch)  # the bus hands the whole batch again
    await consumer.handle(batch[:10])  # and a part of it once more

    assert await reports.counts(backend, hub.account_id) == {
        "messages": 18,
        "conversation_events": 18,
        "call_events": 9 + 6 + 9,
        "ratings": 0,  # tests/analytics/test_service_reports.py replays those
        "message_languages": 0,
        "sla_events": 0,
        "agent_presence": 0,  # tests/analytics/test_agents_report.py
    }
    raw = await backend.query(
        f"SELECT count() FROM {backend.database}.messages WHERE account_id = {{a:String}}",
        {"a": hub.account_id},
    )
    assert int(raw[0][0]) > 18, "the duplicates are stored; reads must collapse them"

    scope = reports.Scope(hub.account_id, T0, T0 + timedelta(days=1), "UTC")
    [first] = await reports.first_response(backend, scope, "agent")
    assert first[0] == "agent-1" and first[1] == 9
    assert first[2] == [300, 540]  # replies after 1..9 minutes: median 5, p90 9 (exact)
    [resolved] = await reports.resolution(backend, scope, "inbox")
    assert resolved[:3] == ["inbox-1", 9, [600, 600]]
    [calls] = await reports.calls(backend, scope)
    assert calls[:6] == ["inbox-1", 9, 3, 3, 3, 90]

    erased = make_event(
        ContactErased(contact_id="c-0"),
        account_id=hub.account_id,
        conversation_id=None,
        actor=Actor(ActorKind.AGENT, "admin"),
    )
    await consumer.handle([BusMessage("contacts", "c-0", encode_event(erased), 0, 0, {})])
    left = await backend.query(
        f"SELECT count() FROM {backend.database}.messages FINAL "
        "WHERE account_id = {a:String} AND contact_id = 'c-0'",
        {"a": hub.account_id},
    )
    assert left == [[0]]
    # conv-0 was theirs: its two messages go too
    assert (await reports.counts(backend, hub.account_id))["messages"] == 16


async def test_an_unreachable_store_is_retried_and_caught_up(client: Client, hub: Hub) -> None:
    part = hub.part("analytics")
    assert isinstance(part, AnalyticsPart) and part.store is not None
    real = part.store.backend
    down = DiesAfter(real, inserts=0)
    part.store.backend = down  # the store refuses every insert from now on
    inbox = await _inbox(hub, "A")
    for i in range(5):
        await _post(client, inbox, f"m-{i}", f"+9477000000{i}")  # the hub keeps taking messages
    status, listed = await call(client, "GET", "/api/v1/conversations")
    assert status == 200 and len(listed["data"]) == 5

    for _ in range(200):  # until the consumer has tried (it waits for fuller batches first)
        ready = await (await client.get("/readyz")).json()
        if ready["checks"]["analytics"].startswith("unavailable"):
            break
        await asyncio.sleep(0.05)
    assert ready["checks"]["analytics"].startswith("unavailable")
    assert ready["checks"]["analytics_lag"] > 0
    metrics = await (await client.get("/metrics")).text()
    assert "hub_analytics_unavailable 1.0" in metrics
    assert 'hub_bus_lag{group="analytics"' in metrics

    down.left = 10**9  # the store is back
    await _settle(hub)
    part.store.backend = real  # so the hub closes it
    status, volume = await call(client, "GET", "/api/v1/reports/volume", params=_range())
    assert status == 200 and volume["totals"]["messages_inbound"] == 5
    ready = await (await client.get("/readyz")).json()
    assert ready["checks"]["analytics"] == "chdb" and ready["checks"]["analytics_lag"] == 0


async def test_backfill_rebuilds_from_the_journal_and_verify_agrees(
    client: Client, hub: Hub
) -> None:
    from analytics.backfill import backfill, verify

    inbox = await _inbox(hub, "A")
    for i in range(4):
        await _post(client, inbox, f"m-{i}", f"+9477000000{i % 2}")
    await _settle(hub)
    backend = _backend(hub)
    await backend.execute(f"TRUNCATE TABLE {backend.database}.messages")  # lost, say
    async with hub.pool.acquire() as conn:
        assert (await verify(conn, backend))["messages"] == {"postgres": 4, "analytics": 0}
        seen: list[tuple[int, int]] = []
        read = await backfill(
            conn, AnalyticsStore(backend), page=3, progress=lambda d, t: seen.append((d, t))
        )
        journal = await conn.fetchval("SELECT count(*) FROM event_log")
        assert read == journal >= 6 and seen[-1] == (read, read) and len(seen) > 2  # pages of 3
        assert await backfill(conn, AnalyticsStore(backend)) == 0  # resumes after the last one
        await backfill(conn, AnalyticsStore(backend), restart=True)  # again from the start
        compared = await verify(conn, backend)
    assert compared["messages"] == {"postgres": 4, "analytics": 4}
    assert compared["conversation_events"] == {"postgres": 2, "analytics": 2}


@pytest.fixture
def quick_rebuilds(monkeypatch: pytest.MonkeyPatch) -> None:
    from analytics import part

    monkeypatch.setattr(part, "REBUILD_EVERY_S", 0.05)


async def test_workers_rebuild_closed_days_and_leave_today_raw(
    quick_rebuilds: None, hub: Hub
) -> None:
    from analytics import rollups

    backend = _backend(hub)
    consumer = AnalyticsConsumer(AnalyticsStore(backend), hub.pool)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    events = _events(hub.account_id, 3)
    moved = [  # the same conversations, yesterday and today
        msgspec.structs.replace(e, occurred_at=today - T0.replace(hour=0) + e.occurred_at)
        for e in events
    ]
    await consumer.handle(_batch(events + moved))
    for _ in range(400):
        if not await rollups.pending(backend):
            break
        await asyncio.sleep(0.05)
    assert not await rollups.pending(backend), "the worker rebuilt the closed day"
    built = await backend.query(f"SELECT DISTINCT day FROM {backend.database}.volume_15m")
    assert built == [[T0.date().isoformat()]]  # today is never rebuilt: it is read raw
    dirty = await rollups.dirty_days(backend, T0.date(), today.date())
    assert dirty == {today.date()}
