"""The journal: every event that crossed the bus, kept in ``event_log``.

It is the audit trail and the source of system items (conversation created, reopened, assigned)
on a conversation's timeline. Idempotent on the event id, which is the table's primary key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from hub.actions.erasure import scrub_event_copies
from hub.bus import Bus, BusMessage, ConsumerOptions, Subscription
from hub.consumers.stream import StreamConsumer
from hub.events.envelope import Event, decode_head
from hub.events.types import CONTACTS, CONVERSATIONS, ContactErased

GROUP = "journal"
_erased = msgspec.json.Decoder(Event[ContactErased])


class Journal:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def subscribe(self, bus: Bus, options: ConsumerOptions) -> list[Subscription]:
        return [
            await bus.subscribe(topic, GROUP, self.handle, options)
            for topic in (CONVERSATIONS, CONTACTS)
        ]

    async def handle(self, batch: Sequence[BusMessage]) -> None:
        heads = [decode_head(m.value) for m in batch]
        rows = [
            (h.id, h.account_id, h.conversation_id, h.type, h.occurred_at, m.value)
            for h, m in zip(heads, batch, strict=True)
        ]
        try:  # the common case: none of these events is logged yet, and COPY is cheapest
            await self._pool.copy_records_to_table(
                "event_log",
                records=[(*row[:5], row[5].decode()) for row in rows],
                columns=("id", "account_id", "conversation_id", "type", "occurred_at", "event"),
            )
        except asyncpg.UniqueViolationError:
            await self._insert_missing(rows)
        erasures = [
            (head.account_id, message.value)
            for head, message in zip(heads, batch, strict=True)
            if head.type == ContactErased.TYPE
        ]
        for account_id, value in erasures:
            await self._forget(account_id, value)
        if not erasures:
            await self._forget_late(heads, batch)

    async def _forget_late(self, heads: Sequence[Any], batch: Sequence[BusMessage]) -> None:
        """An event of a person erased before this batch was logged (it was on the bus while
        the erasure committed, and its ``contact.erased`` may have been logged already, on the
        other topic): blanked now. One indexed read per batch; a scrub only when one is found."""
        # only what happened before the erasure: the anonymised contact's later events stay
        keys = [
            (h.conversation_id or "", "" if h.conversation_id else m.key, h.occurred_at)
            for h, m in zip(heads, batch, strict=True)
        ]
        found = await self._pool.fetch(
            """WITH e AS (SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
                                    AS e(conversation_id, contact_id, occurred_at)),
                    hit AS (SELECT coalesce(c.contact_id, e.contact_id) AS contact_id,
                                   e.conversation_id, e.occurred_at
                              FROM e LEFT JOIN conversations c ON c.id = e.conversation_id)
               SELECT k.account_id, k.id AS contact_id,
                      array_remove(array_agg(DISTINCT nullif(hit.conversation_id, '')), NULL)
                          AS conversation_ids
                 FROM hit JOIN contacts k ON k.id = hit.contact_id
                WHERE k.erased_at IS NOT NULL AND hit.occurred_at <= k.erased_at
                GROUP BY k.account_id, k.id""",
            *zip(*keys, strict=True),
        )
        for row in found:
            async with self._pool.acquire() as conn, conn.transaction():
                await scrub_event_copies(
                    conn, row["account_id"], [row["contact_id"]], list(row["conversation_ids"])
                )

    async def _forget(self, account_id: str, value: bytes) -> None:
        """Blank again what the erasure blanked: an event of the person's conversations that
        was on its way through the bus while the erasure committed is logged whole, after it."""
        erased = _erased.decode(value).payload
        async with self._pool.acquire() as conn, conn.transaction():
            await scrub_event_copies(
                conn, account_id, [erased.contact_id], list(erased.conversation_ids)
            )

    async def _insert_missing(self, rows: list[tuple[Any, ...]]) -> None:
        """A redelivery: insert what is missing; the event id is the primary key."""
        await self._pool.execute(
            """INSERT INTO event_log (id, account_id, conversation_id, type, occurred_at, event)
               SELECT x.id, x.account_id, x.conversation_id, x.type, x.occurred_at,
                      convert_from(x.raw, 'UTF8')::json
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                             $5::timestamptz[], $6::bytea[])
                      AS x(id, account_id, conversation_id, type, occurred_at, raw)
               ON CONFLICT (id) DO NOTHING""",
            *zip(*rows, strict=True),
        )


def journal_part() -> StreamConsumer:
    """Writes in bulk: large batches, a short linger for fuller ones."""
    return StreamConsumer("journal", lambda hub: Journal(hub.pool), max_batch=2000, linger=0.2)
