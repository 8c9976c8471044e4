"""The out-of-office reply: a customer's message that arrives while its inbox is closed gets the
inbox's canned reply, once per conversation and closed period.

A consumer of the stream. Only ``message.received`` (a contact wrote) triggers it, so the reply
(a ``message.created``) never answers itself or another reply of the hub; channels that can tell
an automatic reply from a person (email's ``Auto-Submitted``) drop those at ingest. The period is
keyed by the instant it began (``Schedule.closed_since``): the row in ``out_of_office_replies``
is inserted in the same transaction as the reply, so a redelivered event or a second message in
the same night sends nothing more, while the next night answers again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import asyncpg

from automation.batching import LINGER
from hub.actions.messages import MessageRefused, create_agent_message
from hub.bus import Bus, BusMessage, ConsumerOptions, Subscription
from hub.consumers.idempotency import claim
from hub.consumers.stream import StreamConsumer
from hub.events import Actor, ActorKind, Event, UnknownEventType, decode_event
from hub.events.types import CONVERSATIONS, MessageReceived
from hub.store.business_hours import get_hours

log = logging.getLogger(__name__)

GROUP = "out-of-office"
ACTOR = Actor(ActorKind.SYSTEM, "out-of-office")


class OutOfOffice:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool
        self.replied = 0

    async def subscribe(self, bus: Bus, options: ConsumerOptions) -> list[Subscription]:
        return [await bus.subscribe(CONVERSATIONS, GROUP, self.handle, options)]

    async def handle(self, batch: Sequence[BusMessage]) -> None:
        received = []
        for record in batch:
            try:
                event = decode_event(record.value)
            except UnknownEventType:
                continue
            if isinstance(event.payload, MessageReceived) and event.conversation_id:
                received.append((event, event.payload.inbox_id))
        if not received:
            return
        # One statement per batch: which inboxes reply out of office (a message to any other
        # has no effect, so nothing is written for it).
        replying = {
            r["inbox_id"]
            for r in await self._pool.fetch(
                """SELECT inbox_id FROM inbox_business_hours
                    WHERE inbox_id = ANY($1::text[]) AND out_of_office""",
                sorted({inbox_id for _, inbox_id in received}),
            )
        }
        for event, inbox_id in received:
            if inbox_id in replying:
                await self.consider(event)

    async def consider(self, event: Event[Any]) -> None:
        payload: MessageReceived = event.payload
        conversation_id = event.conversation_id
        assert conversation_id is not None
        async with self._pool.acquire() as conn, conn.transaction():
            if not await claim(conn, GROUP, [event.id]):
                return
            hours = await get_hours(conn, event.account_id, payload.inbox_id)
            if hours is None or not hours.out_of_office or not hours.out_of_office_message:
                return
            since = hours.schedule.closed_since(event.occurred_at)
            if since is None:
                return
            fresh = await conn.fetchval(
                """INSERT INTO out_of_office_replies (conversation_id, closed_since)
                   VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true""",
                conversation_id,
                since,
            )
            if not fresh:
                return
            try:
                async with conn.transaction():
                    made = await create_agent_message(
                        conn,
                        account_id=event.account_id,
                        agent_id="out-of-office",
                        conversation_id=conversation_id,
                        content=hours.out_of_office_message,
                        private=False,
                        client_id=None,
                        correlation_id=event.correlation_id,
                        actor=ACTOR,
                        causation_id=event.id,
                    )
            except MessageRefused as exc:
                log.warning(
                    "out-of-office: reply not sent",
                    extra={"conversation_id": conversation_id, "reason": exc.message},
                )
                return
            await conn.execute(
                """UPDATE out_of_office_replies SET message_id = $3
                    WHERE conversation_id = $1 AND closed_since = $2""",
                conversation_id,
                since,
                made.id,
            )
            self.replied += 1


def out_of_office_part() -> StreamConsumer:
    return StreamConsumer(
        "out-of-office", lambda hub: OutOfOffice(hub.pool), max_batch=100, linger=LINGER
    )
