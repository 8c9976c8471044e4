"""The consumer that records outgoing webhook deliveries: it only writes rows, so a slow or dead
receiver never slows the stream (the sender, ``webhook_sender``, works the rows).

For each event, one delivery per enabled subscription of its account that wants its type, in the
same transaction as the claim of those events' ids: a redelivered batch records nothing twice
(events no subscription wants are neither claimed nor written). The
body is the event exactly as it crossed the bus; the order key is the conversation (or the
record's key), and ``seq`` the outbox position, so the sender keeps a conversation's order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg

from automation.batching import LINGER
from automation.webhook_store import ALL, record_deliveries
from hub.bus import Bus, BusMessage, ConsumerOptions, Subscription
from hub.consumers.idempotency import claim
from hub.consumers.stream import StreamConsumer
from hub.events.envelope import decode_head
from hub.events.types import CONTACTS, CONVERSATIONS

GROUP = "webhooks"


class WebhookRecorder:
    def __init__(self, pool: asyncpg.Pool[Any], recorded: asyncio.Event) -> None:
        self._pool = pool
        #: set when deliveries were recorded, so this process's sender looks at once
        self._recorded = recorded

    async def subscribe(self, bus: Bus, options: ConsumerOptions) -> list[Subscription]:
        return [
            await bus.subscribe(topic, GROUP, self.handle, options)
            for topic in (CONVERSATIONS, CONTACTS)
        ]

    async def handle(self, batch: Sequence[BusMessage]) -> None:
        """The subscriptions are read first, outside a transaction: a batch of an account without
        one (most batches) costs that one statement; only the events some subscription wants are
        claimed and recorded, in one transaction."""
        heads = [(decode_head(m.value), m) for m in batch]
        accounts = sorted({h.account_id for h, _ in heads})
        async with self._pool.acquire() as conn:
            subscriptions = await conn.fetch(
                """SELECT id, account_id, event_types FROM webhook_subscriptions
                    WHERE account_id = ANY($1::text[]) AND enabled""",
                accounts,
            )
            wanted = [
                (
                    head,
                    record,
                    [s["id"] for s in subscriptions if _wants(s, head.account_id, head.type)],
                )
                for head, record in heads
            ]
            wanted = [w for w in wanted if w[2]]
            if not wanted:
                return
            async with conn.transaction():
                fresh = await claim(conn, GROUP, [h.id for h, _, _ in wanted])
                rows = [
                    (
                        head.account_id, sub_id, head.id, head.id, head.type,
                        head.conversation_id or record.key, int(record.headers.get("seq", "0")),
                        record.value,
                    )
                    for head, record, subs in wanted
                    if head.id in fresh
                    for sub_id in subs
                ]  # fmt: skip
                recorded = await record_deliveries(conn, rows) if rows else 0
        if recorded:
            self._recorded.set()


def _wants(subscription: Any, account_id: str, event_type: str) -> bool:
    types = subscription["event_types"]
    return bool(subscription["account_id"] == account_id and (event_type in types or ALL in types))


def webhook_recorder_part(recorded: asyncio.Event) -> StreamConsumer:
    return StreamConsumer(
        "webhooks", lambda hub: WebhookRecorder(hub.pool, recorded), max_batch=500, linger=LINGER
    )
