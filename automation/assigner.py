"""Automatic assignment as parts: a consumer that assigns new (and unassigned, reopened)
conversations and drains an inbox's queue when a conversation there stops keeping an agent busy,
and a timer (workers) that drains every queue every ``HUB_AUTOMATION_POLL_MS``, which is how
waiting conversations reach an agent who just came online (presence is not on the stream)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from msgspec import UNSET

from automation.assignment import BUSY, assign, drain
from automation.batching import LINGER
from hub.bus import Bus, BusMessage, ConsumerOptions, Subscription
from hub.consumers.idempotency import claim
from hub.consumers.stream import StreamConsumer
from hub.events import Event, UnknownEventType, decode_event
from hub.events.types import CONVERSATIONS, ConversationCreated, ConversationUpdated
from hub.timers import BackgroundPart

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger(__name__)
GROUP = "assignment"


class Assigner:
    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    async def subscribe(self, bus: Bus, options: ConsumerOptions) -> list[Subscription]:
        return [await bus.subscribe(CONVERSATIONS, GROUP, self.handle, options)]

    async def handle(self, batch: Sequence[BusMessage]) -> None:
        """One statement per batch finds the events whose inbox has an assignment policy (the
        others need nothing: no policy assigns nothing and drains nothing, and nothing is
        written for them); only those are claimed and run, in order in one transaction."""
        found: list[tuple[Event[Any], str, str | None, str | None]] = []
        for record in batch:
            kind = record.headers.get("type", "")
            if kind not in ("conversation.created", "conversation.updated"):
                continue
            try:
                event = decode_event(record.value)
            except UnknownEventType:
                continue
            inbox_id, to_assign, freed = _wants(event)
            if to_assign is not None or freed is not None:
                found.append((event, inbox_id, to_assign, freed))
        if not found:
            return
        rows = await self._hub.pool.fetch(_WORK, [inbox for _, inbox, *_ in found])
        work = [found[r["ord"] - 1] for r in rows]
        if not work:
            return
        presence = self._hub.presence
        async with self._hub.pool.acquire() as conn, conn.transaction():
            fresh = await claim(conn, GROUP, [e.id for e, *_ in work])
            for event, _, to_assign, freed in work:
                if event.id not in fresh:
                    continue
                fresh.discard(event.id)
                if to_assign is not None:
                    await assign(conn, presence, to_assign)
                if freed is not None:
                    await drain(conn, presence, freed)


def _wants(event: Event[Any]) -> tuple[str, str | None, str | None]:
    """The event's inbox, the conversation to assign, and the inbox whose queue to drain."""
    payload = event.payload
    if isinstance(payload, ConversationCreated):
        return payload.inbox_id, event.conversation_id, None
    if not isinstance(payload, ConversationUpdated):
        return "", None, None
    to_assign: str | None = None
    freed: str | None = None
    state, before = payload.state, payload.previous
    if (
        state.assignee_id is None
        and state.status.value in BUSY
        and (before.assignee_id is not UNSET or before.status is not UNSET)
    ):
        to_assign = event.conversation_id  # unassigned, or reopened unassigned
    if before.assignee_id not in (UNSET, None) or (
        before.status is not UNSET and state.status.value not in BUSY
    ):
        freed = payload.inbox_id  # someone has room again
    return payload.inbox_id, to_assign, freed


#: the events of a batch whose inbox has an assignment policy (the others have no effect)
_WORK = """SELECT k.ord FROM unnest($1::text[]) WITH ORDINALITY AS k(inbox_id, ord)
            WHERE EXISTS (SELECT 1 FROM assignment_policies p WHERE p.inbox_id = k.inbox_id)
            ORDER BY k.ord"""


class QueueDrainer(BackgroundPart):
    name = "assignment-queue"

    async def run(self, hub: Hub) -> None:
        from hub.app import TRANSIENT

        while True:
            try:
                await drain_all(hub)
            except TRANSIENT as exc:
                log.warning("assignment queue: database unavailable", extra={"error": repr(exc)})
            await asyncio.sleep(hub.config.automation_poll_ms / 1000)


async def drain_all(hub: Hub) -> int:
    inboxes = await hub.pool.fetch("SELECT DISTINCT inbox_id FROM assignment_queue")
    done = 0
    for row in inboxes:
        async with hub.pool.acquire() as conn, conn.transaction():
            done += await drain(conn, hub.presence, row["inbox_id"])
    return done


def assigner_part() -> StreamConsumer:
    return StreamConsumer("assignment", Assigner, max_batch=100, linger=LINGER)
