"""SLA policies and their clocks: first response, next response and resolution times, counted
in the inbox's business hours (every minute counts in an inbox without them).

Two pieces. The ``sla-clocks`` consumer starts and stops clocks from the stream: a new
conversation starts ``first_response`` and ``resolution`` for every enabled policy of the account
whose inbox and priority filters match it (also when a priority set later makes one match); a
customer's message after the first answer starts a ``next_response`` cycle; an agent's reply
(not a note, not an automatic message) stops the response clocks; resolving stops them all.

The ``sla-timer`` (workers) is a durable timer like ``hub/snooze_timer.py``: the instants a
clock warns and breaches are in its ``sla_clocks`` row; due rows are taken with ``FOR UPDATE
SKIP LOCKED`` and marked fired in the same transaction as the ``sla.warning`` / ``sla.breached``
event (``hub.actions.sla``), so several workers and a restart mid-timer still give exactly one of
each. Before firing, the timer looks at the conversation itself (an agent's reply since the clock
started, the conversation resolved), so an answer whose event the consumer has not reached yet
still stops the clock instead of a false breach.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from msgspec import UNSET

from automation.batching import LINGER
from hub.actions.sla import announce_sla
from hub.bus import Bus, BusMessage, ConsumerOptions, Subscription
from hub.business_hours import ScheduleInvalid, always_open
from hub.consumers.idempotency import claim
from hub.consumers.stream import StreamConsumer
from hub.events import ActorKind, Event, UnknownEventType, decode_event
from hub.events.types import (
    CONVERSATIONS,
    ConversationCreated,
    ConversationStatus,
    ConversationUpdated,
    MessageCreated,
    MessageReceived,
)
from hub.ids import new_id
from hub.store.business_hours import hours_of_inboxes
from hub.store.db import Conn
from hub.timers import DueTimer

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger(__name__)

GROUP = "sla-clocks"
METRICS = ("first_response", "next_response", "resolution")
#: clocks fired in one transaction
FIRE_BATCH = 200


@dataclasses.dataclass(frozen=True)
class Policy:
    id: str
    account_id: str
    name: str
    inbox_ids: list[str]
    priorities: list[str]
    first_response_minutes: int | None
    next_response_minutes: int | None
    resolution_minutes: int | None
    warning_minutes: int
    enabled: bool

    def minutes(self, metric: str) -> int | None:
        found: int | None = getattr(self, f"{metric}_minutes")
        return found


_COLUMNS = """id, account_id, name, inbox_ids, priorities, first_response_minutes,
              next_response_minutes, resolution_minutes, warning_minutes, enabled"""


async def list_policies(conn: Conn, account_id: str) -> list[Policy]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM sla_policies WHERE account_id = $1 ORDER BY created_at, id",
        account_id,
    )
    return [Policy(**dict(r)) for r in rows]


async def create_policy(conn: Conn, account_id: str, **fields: Any) -> Policy:
    row = await conn.fetchrow(
        f"""INSERT INTO sla_policies (id, account_id, name, inbox_ids, priorities,
                   first_response_minutes, next_response_minutes, resolution_minutes,
                   warning_minutes)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {_COLUMNS}""",
        new_id(),
        account_id,
        fields["name"],
        fields["inbox_ids"],
        fields["priorities"],
        fields["first_response_minutes"],
        fields["next_response_minutes"],
        fields["resolution_minutes"],
        fields["warning_minutes"],
    )
    assert row is not None
    return Policy(**dict(row))


async def update_policy(
    conn: Conn, account_id: str, policy_id: str, **fields: Any
) -> Policy | None:
    """Change a policy in place and reschedule its running clocks (warning and breach instants
    recomputed from when each started, with the new times; a metric the policy no longer has
    loses its running clocks). ``None``: no such policy."""
    row = await conn.fetchrow(
        f"""UPDATE sla_policies SET name = $3, inbox_ids = $4, priorities = $5,
                   first_response_minutes = $6, next_response_minutes = $7,
                   resolution_minutes = $8, warning_minutes = $9
             WHERE id = $1 AND account_id = $2 RETURNING {_COLUMNS}""",
        policy_id,
        account_id,
        fields["name"],
        fields["inbox_ids"],
        fields["priorities"],
        fields["first_response_minutes"],
        fields["next_response_minutes"],
        fields["resolution_minutes"],
        fields["warning_minutes"],
    )
    if row is None:
        return None
    policy = Policy(**dict(row))
    await reschedule(conn, policy)
    return policy


async def reschedule(conn: Conn, policy: Policy, now: datetime | None = None) -> int:
    """New instants for the policy's running clocks (not stopped, not breached); how many."""
    now = now or datetime.now(UTC)
    clocks = await conn.fetch(
        """SELECT conversation_id, metric, cycle, inbox_id, started_at, warned FROM sla_clocks
            WHERE policy_id = $1 AND stopped_at IS NULL AND NOT breached
              FOR UPDATE""",
        policy.id,
    )
    for clock in clocks:
        key = (clock["conversation_id"], policy.id, clock["metric"], clock["cycle"])
        minutes = policy.minutes(clock["metric"])
        if minutes is None:
            await conn.execute(
                """DELETE FROM sla_clocks WHERE conversation_id = $1 AND policy_id = $2
                      AND metric = $3 AND cycle = $4""",
                *key,
            )
            continue
        warn, due = await _deadlines(
            conn, clock["inbox_id"], clock["started_at"], minutes, policy.warning_minutes
        )
        # a warning still ahead is given (again) at its new instant
        warned = clock["warned"] and (warn is None or warn <= now)
        await conn.execute(
            """UPDATE sla_clocks SET warn_at = $5, due_at = $6, warned = $7
                WHERE conversation_id = $1 AND policy_id = $2 AND metric = $3 AND cycle = $4""",
            *key,
            warn,
            due,
            warned,
        )
    return len(clocks)


async def reopened(conn: Conn, account_id: str, conversation_id: str, at: datetime) -> None:
    """A resolved conversation reopened: a new resolution cycle from now for every policy that
    matches it (the earlier cycle stopped at the resolution)."""
    row = await conn.fetchrow(
        "SELECT inbox_id, priority FROM conversations WHERE id = $1 AND account_id = $2",
        conversation_id,
        account_id,
    )
    if row is None:
        return
    for policy in await matching(conn, account_id, row["inbox_id"], row["priority"]):
        if policy.resolution_minutes is None:
            continue
        cycle = await conn.fetchval(
            """SELECT coalesce(max(cycle), -1) + 1 FROM sla_clocks
                WHERE conversation_id = $1 AND policy_id = $2 AND metric = 'resolution'""",
            conversation_id,
            policy.id,
        )
        await start_clock(
            conn, policy, conversation_id=conversation_id, inbox_id=row["inbox_id"],
            metric="resolution", cycle=cycle, start=at,
        )  # fmt: skip


async def delete_policy(conn: Conn, account_id: str, policy_id: str) -> bool:
    done = await conn.fetchval(
        "DELETE FROM sla_policies WHERE id = $1 AND account_id = $2 RETURNING true",
        policy_id,
        account_id,
    )
    return bool(done)


async def _deadlines(
    conn: Conn, inbox_id: str, start: datetime, minutes: int, warning: int
) -> tuple[datetime | None, datetime]:
    """When a clock of ``minutes`` started at ``start`` warns and breaches, in business time."""
    hours = (await hours_of_inboxes(conn, [inbox_id])).get(inbox_id)
    add = always_open if hours is None else hours.schedule.add_business_minutes
    try:
        due = add(start, minutes)
        warn = add(start, minutes - warning) if 0 < warning < minutes else None
    except ScheduleInvalid:  # never open: every minute counts
        due = always_open(start, minutes)
        warn = always_open(start, minutes - warning) if 0 < warning < minutes else None
    return warn, due


async def start_clock(
    conn: Conn,
    policy: Policy,
    *,
    conversation_id: str,
    inbox_id: str,
    metric: str,
    cycle: int,
    start: datetime,
    stopped: datetime | None = None,
) -> None:
    minutes = policy.minutes(metric)
    if minutes is None:
        return
    warn, due = await _deadlines(conn, inbox_id, start, minutes, policy.warning_minutes)
    await conn.execute(
        """INSERT INTO sla_clocks (conversation_id, policy_id, metric, cycle, account_id,
                                   inbox_id, started_at, warn_at, due_at, stopped_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING""",
        conversation_id, policy.id, metric, cycle, policy.account_id, inbox_id, start, warn, due,
        stopped,
    )  # fmt: skip


async def matching(
    conn: Conn, account_id: str, inbox_id: str, priority: str | None
) -> list[Policy]:
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM sla_policies
             WHERE account_id = $1 AND enabled
               AND (inbox_ids = '{{}}' OR $2 = ANY(inbox_ids))
               AND (priorities = '{{}}' OR $3 = ANY(priorities))
             ORDER BY created_at, id""",
        account_id,
        inbox_id,
        priority,
    )
    return [Policy(**dict(r)) for r in rows]


async def _answered_since(conn: Conn, conversation_id: str, since: datetime) -> datetime | None:
    """When an agent first answered the customer (not a note, not an automatic message)."""
    at: datetime | None = await conn.fetchval(
        """SELECT min(created_at) FROM messages
            WHERE conversation_id = $1 AND direction = 'outbound' AND NOT private
              AND sender_type = 'agent' AND created_at >= $2""",
        conversation_id,
        since,
    )
    return at


async def attach(conn: Conn, account_id: str, conversation_id: str) -> None:
    """Start first response and resolution for every policy that matches the conversation now
    (from when it was created; a clock already there stays as it is)."""
    row = await conn.fetchrow(
        """SELECT inbox_id, priority, created_at, status FROM conversations
            WHERE id = $1 AND account_id = $2""",
        conversation_id,
        account_id,
    )
    if row is None or row["status"] == ConversationStatus.RESOLVED.value:
        return
    answered = await _answered_since(conn, conversation_id, row["created_at"])
    for policy in await matching(conn, account_id, row["inbox_id"], row["priority"]):
        for metric in ("first_response", "resolution"):
            await start_clock(
                conn, policy, conversation_id=conversation_id, inbox_id=row["inbox_id"],
                metric=metric, cycle=0, start=row["created_at"],
                stopped=answered if metric == "first_response" else None,
            )  # fmt: skip


async def customer_wrote(conn: Conn, event: Event[Any], inbox_id: str) -> None:
    """A customer's message after an answer starts a next-response cycle per policy (an answer
    written after the message, already in the conversation when a lagging consumer started the
    clocks, does not count)."""
    conversation_id = event.conversation_id
    rows = await conn.fetch(
        """SELECT policy_id,
                  bool_or(stopped_at <= $2) FILTER (WHERE metric = 'first_response')
                      AS answered,
                  bool_or(stopped_at IS NULL) FILTER (WHERE metric = 'next_response')
                      AS waiting,
                  coalesce(max(cycle) FILTER (WHERE metric = 'next_response'), 0) AS cycle
             FROM sla_clocks WHERE conversation_id = $1 GROUP BY policy_id""",
        conversation_id,
        event.occurred_at,
    )
    if not rows:
        return
    policies = {p.id: p for p in await list_policies(conn, event.account_id)}
    for r in rows:
        policy = policies.get(r["policy_id"])
        if policy is None or not policy.enabled or not r["answered"] or r["waiting"]:
            continue
        assert conversation_id is not None
        await start_clock(
            conn, policy, conversation_id=conversation_id, inbox_id=inbox_id,
            metric="next_response", cycle=r["cycle"] + 1, start=event.occurred_at,
        )  # fmt: skip


async def stop(conn: Conn, conversation_id: str, metrics: Sequence[str], at: datetime) -> None:
    await conn.execute(
        """UPDATE sla_clocks SET stopped_at = $3
            WHERE conversation_id = $1 AND metric = ANY($2::text[]) AND stopped_at IS NULL""",
        conversation_id,
        list(metrics),
        at,
    )


def _looks_at(event: Event[Any]) -> tuple[bool, bool]:
    """Whether the event may start clocks from the account's policies, and whether it acts on
    the conversation's clocks (an event with neither needs nothing)."""
    payload = event.payload
    if event.conversation_id is None:
        return False, False
    if isinstance(payload, ConversationCreated):
        return True, False
    if isinstance(payload, MessageReceived):
        return False, True
    if isinstance(payload, MessageCreated):
        return False, not payload.private and event.actor.kind is ActorKind.AGENT
    if isinstance(payload, ConversationUpdated):
        if payload.state.status is ConversationStatus.RESOLVED:
            return False, True
        return (
            payload.previous.status is ConversationStatus.RESOLVED
            or payload.previous.priority is not UNSET
        ), False
    return False, False


#: which events of a batch have work: one that may start clocks when the account has an enabled
#: policy, one that acts on clocks when its conversation has any, and any event after one with
#: the events of a batch with work: a policy applies or a clock runs, or an earlier event on
#: the same conversation in the batch has work (that one may start the clocks it acts on); the
#: others have no effect, and nothing is written for them
_WORK = """WITH k AS (
               SELECT * FROM unnest($1::text[], $2::text[], $3::bool[], $4::bool[])
                      WITH ORDINALITY AS k(account_id, conversation_id, by_policy, by_clock,
                                           ord)),
           own AS (
               SELECT k.ord, k.conversation_id,
                      (k.by_policy AND EXISTS (SELECT 1 FROM sla_policies p
                                                WHERE p.account_id = k.account_id
                                                  AND p.enabled))
                      OR (k.by_clock AND EXISTS (SELECT 1 FROM sla_clocks c
                                                  WHERE c.conversation_id = k.conversation_id))
                      AS work
                 FROM k),
           marked AS (
               SELECT ord, bool_or(work) OVER (PARTITION BY conversation_id ORDER BY ord) AS work
                 FROM own)
           SELECT ord FROM marked WHERE work ORDER BY ord"""


class SlaClocks:
    """The consumer that starts and stops the clocks."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def subscribe(self, bus: Bus, options: ConsumerOptions) -> list[Subscription]:
        return [await bus.subscribe(CONVERSATIONS, GROUP, self.handle, options)]

    async def handle(self, batch: Sequence[BusMessage]) -> None:
        """One statement per batch finds the events with work (see :data:`_WORK`); only those
        are claimed and applied, in order in one transaction."""
        events: list[tuple[Event[Any], bool, bool]] = []
        for record in batch:
            try:
                event = decode_event(record.value)
            except UnknownEventType:
                continue
            by_policy, by_clock = _looks_at(event)
            if by_policy or by_clock:
                events.append((event, by_policy, by_clock))
        if not events:
            return
        rows = await self._pool.fetch(
            _WORK,
            [e.account_id for e, _, _ in events],
            [e.conversation_id for e, _, _ in events],
            [p for _, p, _ in events],
            [c for _, _, c in events],
        )
        work = [events[r["ord"] - 1][0] for r in rows]
        if not work:
            return
        async with self._pool.acquire() as conn, conn.transaction():
            fresh = await claim(conn, GROUP, [e.id for e in work])
            for event in work:
                if event.id in fresh:
                    fresh.discard(event.id)
                    await self.apply(conn, event)

    async def apply(self, conn: Conn, event: Event[Any]) -> None:
        payload = event.payload
        conversation_id = event.conversation_id
        assert conversation_id is not None
        if isinstance(payload, ConversationCreated):
            await attach(conn, event.account_id, conversation_id)
        elif isinstance(payload, MessageReceived):
            await customer_wrote(conn, event, payload.inbox_id)
        elif isinstance(payload, MessageCreated):
            if not payload.private and event.actor.kind is ActorKind.AGENT:
                await stop(
                    conn, conversation_id, ("first_response", "next_response"), event.occurred_at
                )
        elif isinstance(payload, ConversationUpdated):
            if payload.state.status is ConversationStatus.RESOLVED:
                await stop(conn, conversation_id, METRICS, event.occurred_at)
                return
            if payload.previous.status is ConversationStatus.RESOLVED:
                await reopened(conn, event.account_id, conversation_id, event.occurred_at)
            if payload.previous.priority is not UNSET:
                await attach(conn, event.account_id, conversation_id)


def sla_clocks_part() -> StreamConsumer:
    return StreamConsumer(GROUP, lambda hub: SlaClocks(hub.pool), max_batch=100, linger=LINGER)


async def _satisfied(conn: Conn, clock: Any) -> datetime | None:
    """When the conversation met the clock's goal already (its events may not have reached the
    consumer yet); ``None`` when it has not."""
    if clock["metric"] == "resolution":
        row = await conn.fetchrow(
            "SELECT status, updated_at FROM conversations WHERE id = $1", clock["conversation_id"]
        )
        if row is None:
            gone: datetime = clock["started_at"]
            return gone
        resolved: datetime | None = row["updated_at"] if row["status"] == "resolved" else None
        return resolved
    return await _answered_since(conn, clock["conversation_id"], clock["started_at"])


async def fire_due(conn: Conn, now: datetime | None = None) -> int:
    """Announce the warnings and breaches that are due; the number announced. Run in a
    transaction: rows are locked with ``SKIP LOCKED`` and marked in it, so each fires once."""
    now = now or datetime.now(UTC)
    rows = await conn.fetch(
        """SELECT * FROM sla_clocks
            WHERE stopped_at IS NULL
              AND ((NOT breached AND due_at <= $1) OR (NOT warned AND warn_at <= $1))
            ORDER BY due_at LIMIT $2
              FOR UPDATE SKIP LOCKED""",
        now,
        FIRE_BATCH,
    )
    fired = 0
    for clock in rows:
        key = (clock["conversation_id"], clock["policy_id"], clock["metric"], clock["cycle"])
        met = await _satisfied(conn, clock)
        if met is not None:
            await conn.execute(
                """UPDATE sla_clocks SET stopped_at = $5 WHERE conversation_id = $1
                      AND policy_id = $2 AND metric = $3 AND cycle = $4""",
                *key,
                met,
            )
            continue
        breached = clock["due_at"] <= now
        await announce_sla(
            conn, breached=breached, account_id=clock["account_id"],
            conversation_id=clock["conversation_id"], inbox_id=clock["inbox_id"],
            policy_id=clock["policy_id"], metric=clock["metric"], cycle=clock["cycle"],
            due_at=clock["due_at"],
        )  # fmt: skip
        await conn.execute(
            """UPDATE sla_clocks SET warned = true, breached = breached OR $5
                WHERE conversation_id = $1 AND policy_id = $2 AND metric = $3 AND cycle = $4""",
            *key,
            breached,
        )
        fired += 1
    return fired


async def next_due(conn: Conn) -> datetime | None:
    due: datetime | None = await conn.fetchval(
        """SELECT least((SELECT min(due_at) FROM sla_clocks
                          WHERE stopped_at IS NULL AND NOT breached),
                        (SELECT min(warn_at) FROM sla_clocks
                          WHERE stopped_at IS NULL AND NOT warned))"""
    )
    return due


class SlaTimer(DueTimer):
    """Fires the clocks when their time comes (workers), sleeping until the next one, at most
    ``HUB_AUTOMATION_POLL_MS`` (a clock started by another process is seen within that)."""

    name = "sla-timer"
    batch = FIRE_BATCH

    def poll_seconds(self, hub: Hub) -> float:
        return hub.config.automation_poll_ms / 1000

    async def fire(self, conn: Conn) -> int:
        return await fire_due(conn)

    async def next_due(self, conn: Conn) -> datetime | None:
        return await next_due(conn)

    def health(self) -> Mapping[str, Any]:
        return {"fired": self.fired}
