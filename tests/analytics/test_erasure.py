"""``contact.erased`` reaches analytics: the contact's conversations, messages and calls leave
every table (event tables and rollups), and the reports stop counting them at once, before and
after the rebuild of the days they were on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from analytics import reports, rollups
from analytics.part import AnalyticsConsumer
from analytics.store import AnalyticsStore
from hub.app import Hub
from hub.events.envelope import Actor, ActorKind, Event, Payload, make_event
from hub.events.types import ContactErased
from tests.analytics.test_pipeline import T0, _backend, _batch, _events

pytestmark = pytest.mark.postgres


async def test_an_erased_contact_leaves_every_analytics_table(hub: Hub) -> None:
    backend = _backend(hub)
    db = backend.database
    consumer = AnalyticsConsumer(AnalyticsStore(backend), hub.pool)
    await consumer.handle(_batch(_events(hub.account_id, 6)))  # contacts c-0 .. c-5
    assert await rollups.rebuild_pending(backend)  # the rollups hold them too
    scope = reports.Scope(hub.account_id, T0, T0 + timedelta(days=1), "UTC")
    before = await reports.volume(backend, scope)
    assert before["totals"] == {"conversations": 6, "messages_inbound": 6, "messages_outbound": 6}

    erased: Event[Payload] = make_event(
        ContactErased(contact_id="c-2", conversation_ids=("conv-2",), message_ids=("m-2", "r-2")),
        account_id=hub.account_id,
        conversation_id=None,
        actor=Actor(ActorKind.SYSTEM, None),
    )
    await consumer.handle(_batch([erased]))
    await consumer.handle(_batch([erased]))  # delivered twice: nothing more to remove

    for table, column in (
        ("messages", "conversation_id"),
        ("conversation_events", "conversation_id"),
        ("call_events", "conversation_id"),
        ("first_replies", "conversation_id"),
        ("resolutions", "conversation_id"),
        ("messages", "message_id"),
        ("messages", "contact_id"),
        ("conversation_events", "contact_id"),
    ):
        left = await backend.query(
            f"SELECT count() FROM {db}.{table} WHERE {column} IN ('conv-2', 'm-2', 'r-2', 'c-2')"
        )
        assert left == [[0]], table
    after = await reports.volume(backend, scope)
    assert after["totals"] == {"conversations": 5, "messages_inbound": 5, "messages_outbound": 5}
    [first] = await reports.first_response(backend, scope, "agent")
    assert first[1] == 5
    [resolved] = await reports.resolution(backend, scope, "inbox")
    assert resolved[1] == 5
    assert [row[1] for row in await reports.calls(backend, scope)] == [5]

    assert await rollups.pending(backend) == [T0.date()]  # its day reads raw until rebuilt
    await rollups.rebuild_pending(backend)
    assert await reports.volume(backend, scope) == after
    assert (await reports.first_response(backend, scope, "agent"))[0][1] == 5
