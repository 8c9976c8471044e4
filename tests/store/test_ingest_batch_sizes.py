"""Ingest and the outbox take one path for small batches (one statement per step) and another for
large ones (COPY): both must store the same rows and events, in order."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from hub.actions import ingest as ingest_module
from hub.actions.ingest import IngestRequest, ingest_batch
from hub.events import make_event
from hub.events.envelope import SYSTEM
from hub.events.types import ConversationCreated, ConversationState, ConversationStatus
from hub.store import outbox
from hub.store.outbox import append_events
from tests.store.test_ingest import make_inbox, msg, outbox_events

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("size", [3, ingest_module.SMALL_BATCH + 7])
async def test_small_and_large_batches_store_messages_and_move_conversations(
    db: asyncpg.Connection[Any], size: int
) -> None:
    inbox = await make_inbox(db)
    senders = [f"+9477000{n:04d}" for n in range(5)]

    async def batch(tag: str) -> list[Any]:
        requests = [
            IngestRequest(inbox, msg(f"{tag}-{n}", senders[n % 5], f"text {n}"), "c")
            for n in range(size)
        ]
        async with db.transaction():
            return await ingest_batch(db, requests)

    first = await batch("a")  # new contacts and conversations
    second = await batch("b")  # existing ones: the conversations move
    assert not any(r.duplicate for r in first + second)
    assert [r.conversation_id for r in first] == [r.conversation_id for r in second]
    rows = await db.fetch(
        "SELECT id, messages_count, last_activity_at > created_at AS moved FROM conversations"
    )
    assert len(rows) == min(size, 5)
    assert sum(r["messages_count"] for r in rows) == 2 * size
    assert all(r["moved"] for r in rows)
    stored = await db.fetch(
        "SELECT provider_message_id, content, direction, status FROM messages ORDER BY id"
    )
    assert [r["provider_message_id"] for r in stored] == [
        f"{tag}-{n}" for tag in "ab" for n in range(size)
    ]
    assert {(r["direction"], r["status"]) for r in stored} == {("inbound", "received")}
    received = [e for e in await outbox_events(db) if e.type == "message.received"]
    assert [e.payload.provider_message_id for e in received] == [
        f"{tag}-{n}" for tag in "ab" for n in range(size)
    ]
    again = await batch("a")  # a provider retry of the first batch
    assert all(r.duplicate for r in again)
    assert [r.message_id for r in again] == [r.message_id for r in first]


@pytest.mark.parametrize("size", [1, outbox.SMALL_BATCH, outbox.SMALL_BATCH + 1])
async def test_outbox_rows_get_consecutive_seqs_in_event_order(
    db: asyncpg.Connection[Any], size: int
) -> None:
    def events(n: int) -> list[Any]:
        return [
            make_event(
                ConversationCreated(
                    inbox_id="i",
                    contact_id=f"c{i}",
                    state=ConversationState(status=ConversationStatus.OPEN),
                ),
                account_id="a",
                conversation_id=f"conv-{i}",
                actor=SYSTEM,
            )
            for i in range(n)
        ]

    written = []
    for _ in range(2):
        batch = events(size)
        written += [e.id for e in batch]
        async with db.transaction():
            await append_events(db, batch)
    rows = await db.fetch("SELECT seq, event_id FROM outbox ORDER BY seq")
    assert [r["event_id"] for r in rows] == written
    seqs = [r["seq"] for r in rows]
    assert seqs == list(range(seqs[0], seqs[0] + 2 * size))
    assert await db.fetchval("SELECT last_value FROM outbox_seq") == seqs[-1]
