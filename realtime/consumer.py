"""The realtime consumer group: logs every conversation and contact event for replay, then wakes
the account streams that deliver them to agent sockets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import msgspec

from hub.bus import Bus, BusMessage, ConsumerOptions, Subscription
from hub.events.envelope import decode_head
from hub.events.types import CONTACTS, CONVERSATIONS
from realtime.log import append

GROUP = "realtime"


class _InboxOnly(msgspec.Struct):
    inbox_id: str | None = None


class _PayloadInbox(msgspec.Struct):
    payload: _InboxOnly


_inbox_decoder = msgspec.json.Decoder(_PayloadInbox)


class RealtimeConsumer:
    def __init__(self, pool: asyncpg.Pool[Any], on_logged: Callable[[set[str]], None]) -> None:
        self._pool = pool
        self._on_logged = on_logged

    async def subscribe(self, bus: Bus, options: ConsumerOptions) -> list[Subscription]:
        return [
            await bus.subscribe(topic, GROUP, self.handle, options)
            for topic in (CONVERSATIONS, CONTACTS)
        ]

    async def handle(self, batch: Sequence[BusMessage]) -> None:
        heads = [decode_head(m.value) for m in batch]
        inboxes = [_inbox_decoder.decode(m.value).payload.inbox_id for m in batch]
        async with self._pool.acquire() as conn, conn.transaction():
            accounts = await append(conn, heads, [m.value for m in batch], inboxes)
        if accounts:
            self._on_logged(accounts)  # after commit: readers find the new sequence numbers
