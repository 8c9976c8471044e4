"""The time-based rule trigger ``no_reply``: a rule that fires when a customer has waited
``wait_minutes`` for an agent's reply.

Two pieces. The ``no-reply-waits`` consumer opens a waiting period per conversation and enabled
``no_reply`` rule at a customer's message (``message.received``) when none is open, and closes the
open ones at an agent's reply (not a note, not an automatic message) or when the conversation is
resolved. So a customer writing three times before anyone answers is one waiting period, and the
rule fires once in it.

The ``no-reply-timer`` (workers) is a durable timer like the SLA timer (``hub/timers.py``): the
instant a period falls due is in its row; due rows are taken with ``FOR UPDATE SKIP LOCKED`` and
marked fired in the same transaction as the rule's actions, so several workers and a restart
still fire each period once. Before firing it looks at the conversation itself (an agent's reply
since the period began, the conversation resolved), so an answer whose event is still in flight
closes the period instead of firing the rule. The rule's conditions are evaluated on the
conversation as it is then, and its actions applied as the rule, like any rule's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from automation.batching import LINGER
from automation.rule_engine import (
    BROKEN,
    current_context,
    run_actions,
)
from automation.rule_evaluator import rule_check
from automation.rule_store import COLUMNS as RULE_COLUMNS
from automation.rule_store import disable_rule, rule_of
from hub.bus import Bus, BusMessage, ConsumerOptions, Subscription
from hub.consumers.idempotency import claim
from hub.consumers.stream import StreamConsumer
from hub.events import Actor, ActorKind, Event, UnknownEventType, decode_event
from hub.events.envelope import decode_head
from hub.events.types import (
    CONVERSATIONS,
    ConversationStatus,
    ConversationUpdated,
    MessageCreated,
    MessageReceived,
)
from hub.store.db import Conn
from hub.timers import DueTimer

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger(__name__)

GROUP = "no-reply-waits"
FIRE_BATCH = 100
_WATCHED = frozenset(("message.received", "message.created", "conversation.updated"))
#: of the events ($1 ids, $2 accounts, $3 conversations, $4 opens a period), those with work
_WITH_WORK = """
    SELECT e.id FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[])
                     AS e(id, account_id, conversation_id, opens)
     WHERE CASE WHEN e.opens
                THEN EXISTS (SELECT 1 FROM automation_rules r
                              WHERE r.account_id = e.account_id AND r.trigger = 'no_reply'
                                AND r.enabled)
                ELSE EXISTS (SELECT 1 FROM automation_no_reply_waits w
                              WHERE w.conversation_id = e.conversation_id
                                AND w.closed_at IS NULL)
           END"""


async def open_waits(conn: Conn, event: Event[Any]) -> int:
    """A customer's message: open a waiting period for every enabled ``no_reply`` rule of the
    account that has none open on the conversation; how many were opened."""
    rows = await conn.fetch(
        """INSERT INTO automation_no_reply_waits (conversation_id, rule_id, account_id,
                                                  waiting_since, cause_event_id, due_at)
           SELECT $1::text, r.id, r.account_id, $3::timestamptz, $4::text,
                  $3::timestamptz + make_interval(mins => r.wait_minutes)
             FROM automation_rules r
            WHERE r.account_id = $2 AND r.trigger = 'no_reply' AND r.enabled
           ON CONFLICT DO NOTHING RETURNING rule_id""",
        event.conversation_id,
        event.account_id,
        event.occurred_at,
        event.id,
    )
    return len(rows)


async def close_waits(conn: Conn, conversation_id: str, at: datetime) -> None:
    await conn.execute(
        """UPDATE automation_no_reply_waits SET closed_at = $2
            WHERE conversation_id = $1 AND closed_at IS NULL""",
        conversation_id,
        at,
    )


class NoReplyWaits:
    """The consumer that opens and closes waiting periods."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def subscribe(self, bus: Bus, options: ConsumerOptions) -> list[Subscription]:
        return [await bus.subscribe(CONVERSATIONS, GROUP, self.handle, options)]

    async def handle(self, batch: Sequence[BusMessage]) -> None:
        """One statement finds the events with work (a customer's message in an account with a
        ``no_reply`` rule; a reply or resolution in a conversation with an open period); only
        those are claimed and applied, in one transaction: most batches cost that one statement
        and no transaction."""
        heads = [
            (head, record)
            for record in batch
            if (head := decode_head(record.value)).type in _WATCHED and head.conversation_id
        ]
        if not heads:
            return
        async with self._pool.acquire() as conn:
            found = await conn.fetch(
                _WITH_WORK,
                [h.id for h, _ in heads],
                [h.account_id for h, _ in heads],
                [h.conversation_id for h, _ in heads],
                [h.type == "message.received" for h, _ in heads],
            )
            busy = {r[0] for r in found}
            work = [(h, record) for h, record in heads if h.id in busy]
            if not work:
                return
            async with conn.transaction():
                fresh = await claim(conn, GROUP, [h.id for h, _ in work])
                for head, record in work:
                    if head.id not in fresh:
                        continue
                    try:
                        event = decode_event(record.value)
                    except UnknownEventType:
                        continue
                    await self.apply(conn, event)

    async def apply(self, conn: Conn, event: Event[Any]) -> None:
        payload = event.payload
        conversation_id = event.conversation_id
        assert conversation_id is not None
        if isinstance(payload, MessageReceived):
            await open_waits(conn, event)
        elif isinstance(payload, MessageCreated):
            if not payload.private and event.actor.kind is ActorKind.AGENT:
                await close_waits(conn, conversation_id, event.occurred_at)
        elif (
            isinstance(payload, ConversationUpdated)
            and payload.state.status is ConversationStatus.RESOLVED
        ):
            await close_waits(conn, conversation_id, event.occurred_at)


def no_reply_waits_part() -> StreamConsumer:
    return StreamConsumer(GROUP, lambda hub: NoReplyWaits(hub.pool), max_batch=100, linger=LINGER)


async def _ended(conn: Conn, wait: Any) -> datetime | None:
    """When the waiting period ended already (an agent answered, the conversation was resolved
    or is gone) though its event may not have reached the consumer; ``None``: still waiting."""
    row = await conn.fetchrow(
        """SELECT c.status, c.updated_at,
                  (SELECT min(created_at) FROM messages m
                    WHERE m.conversation_id = c.id AND m.direction = 'outbound'
                      AND NOT m.private AND m.sender_type = 'agent'
                      AND m.created_at >= $2) AS answered
             FROM conversations c WHERE c.id = $1""",
        wait["conversation_id"],
        wait["waiting_since"],
    )
    if row is None:
        gone: datetime = wait["waiting_since"]
        return gone
    if row["answered"] is not None:
        answered: datetime = row["answered"]
        return answered
    if row["status"] == ConversationStatus.RESOLVED.value:
        resolved: datetime = row["updated_at"]
        return resolved
    return None


async def fire_due(conn: Conn, now: datetime | None = None) -> int:
    """Fire the ``no_reply`` rules whose waiting periods are due (in a transaction: rows are
    locked with ``SKIP LOCKED`` and marked fired in it); the number of periods handled."""
    now = now or datetime.now(UTC)
    waits = await conn.fetch(
        """SELECT * FROM automation_no_reply_waits
            WHERE fired_at IS NULL AND closed_at IS NULL AND due_at <= $1
            ORDER BY due_at LIMIT $2
              FOR UPDATE SKIP LOCKED""",
        now,
        FIRE_BATCH,
    )
    for wait in waits:
        key = (wait["conversation_id"], wait["rule_id"], wait["waiting_since"])
        ended = await _ended(conn, wait)
        if ended is not None:
            await conn.execute(
                """UPDATE automation_no_reply_waits SET closed_at = $4
                    WHERE conversation_id = $1 AND rule_id = $2 AND waiting_since = $3""",
                *key,
                ended,
            )
            continue
        await conn.execute(
            """UPDATE automation_no_reply_waits SET fired_at = $4
                WHERE conversation_id = $1 AND rule_id = $2 AND waiting_since = $3""",
            *key,
            now,
        )
        await _fire(conn, wait)
    return len(waits)


async def _fire(conn: Conn, wait: Any) -> None:
    row = await conn.fetchrow(
        f"SELECT {RULE_COLUMNS} FROM automation_rules WHERE id = $1", wait["rule_id"]
    )
    if row is None:
        return
    rule = rule_of(row)
    account_id = wait["account_id"]
    if not rule.enabled:
        return
    ctx = await current_context(conn, account_id, wait["conversation_id"])
    if ctx is None:
        return
    try:
        async with conn.transaction():  # a savepoint: a broken rule changes nothing
            if not rule_check(rule)(ctx):  # the engine's compiled conditions
                return
            await run_actions(
                conn,
                account_id=account_id,
                conversation_id=ctx.conversation_id,
                labels=ctx.labels,
                actions=rule.actions,
                actor=Actor(ActorKind.INTEGRATION, rule.id),
                correlation_id=None,
                causation_id=wait["cause_event_id"],
            )
    except BROKEN as exc:
        reason = getattr(exc, "message", None) or f"pattern took too long: {exc}"
        log.warning("rules: rule turned off", extra={"rule_id": rule.id, "reason": reason})
        await disable_rule(conn, account_id, rule.id, reason)
        return
    await conn.execute(
        """INSERT INTO automation_rule_runs (event_id, rule_id, account_id, conversation_id,
                                             depth)
           VALUES ($1, $2, $3, $4, 0) ON CONFLICT DO NOTHING""",
        wait["cause_event_id"],
        rule.id,
        account_id,
        ctx.conversation_id,
    )


async def next_due(conn: Conn) -> datetime | None:
    due: datetime | None = await conn.fetchval(
        """SELECT min(due_at) FROM automation_no_reply_waits
            WHERE fired_at IS NULL AND closed_at IS NULL"""
    )
    return due


class NoReplyTimer(DueTimer):
    """Fires ``no_reply`` rules when a waiting period falls due (workers), sleeping until the
    next one, at most ``HUB_AUTOMATION_POLL_MS``."""

    name = "no-reply-timer"
    batch = FIRE_BATCH

    def poll_seconds(self, hub: Hub) -> float:
        return hub.config.automation_poll_ms / 1000

    async def fire(self, conn: Conn) -> int:
        return await fire_due(conn)

    async def next_due(self, conn: Conn) -> datetime | None:
        return await next_due(conn)

    def health(self) -> Mapping[str, Any]:
        return {"fired": self.fired}
