"""The journal: every event that crossed the bus, kept in ``event_log``.

It is the audit trail and the source of system items (conversation created, reopened, assigned)
on a conversation's timeline. Idempotent through :func:`hub.consumers.idempotency.claim`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from hub.bus import Bus, BusMessage, ConsumerOptions, Subscription
from hub.consumers.idempotency import claim
from hub.events import decode_event
from hub.events.types import CONTACTS, CONVERSATIONS

GROUP = "journal"


class Journal:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def subscribe(self, bus: Bus, options: ConsumerOptions) -> list[Subscription]:
        return [
            await bus.subscribe(topic, GROUP, self.handle, options)
            for topic in (CONVERSATIONS, CONTACTS)
        ]

    async def handle(self, batch: Sequence[BusMessage]) -> None:
        events = [decode_event(m.value) for m in batch]
        async with self._pool.acquire() as conn, conn.transaction():
            new = await claim(conn, GROUP, [e.id for e in events])
            rows = [
                (e.id, e.account_id, e.conversation_id, e.type, e.occurred_at, m.value)
                for e, m in zip(events, batch, strict=True)
                if e.id in new
            ]
            if rows:
                await conn.execute(
                    """INSERT INTO event_log (id, account_id, conversation_id, type, occurred_at,
                                              event)
                       SELECT id, account_id, conversation_id, type, occurred_at,
                              convert_from(raw, 'UTF8')::jsonb
                         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                     $5::timestamptz[], $6::bytea[])
                              AS x(id, account_id, conversation_id, type, occurred_at, raw)""",
                    *zip(*rows, strict=True),
                )
