"""Delivery status of the hub's outbound messages: what the delivery consumer and the providers'
status callbacks report, each change a ``message.status_changed`` event in the same transaction.

The rules, so that reports arriving late, twice or out of order cannot make a message lie:

- a status never moves backwards: queued < sent < delivered < read (a late "sent" after
  "delivered" is ignored; a report of the status a message already has is a no-op);
- ``failed`` is reachable from queued and sent only: a message the provider reported delivered or
  read did arrive, whatever a later report says;
- ``failed`` is final, unless the provider later reports ``delivered`` or ``read``: proof of
  arrival outranks an earlier failure report (carriers and WhatsApp do send such corrections);
  the error code is then cleared;
- inbound messages (``received``) are never changed by a report.

A report about a provider id no message carries yet is kept (``message_status_pending``) and
applied when the send that produced that id is recorded: providers can call back before their own
API answer reaches the hub. An advisory lock per (inbox, provider id) orders the two.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Sequence
from typing import Any

from hub.contracts.channel import StatusUpdate
from hub.events import Actor, ActorKind, Event, MessageStatus, MessageStatusChanged, make_event
from hub.store.db import Conn
from hub.store.outbox import append_events

log = logging.getLogger(__name__)

_RANK = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SENT: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.READ: 3,
}


def may_change(current: MessageStatus, new: MessageStatus) -> bool:
    """Whether a message in ``current`` takes a report of ``new`` (see the module's rules)."""
    if new == current or MessageStatus.RECEIVED in (current, new):
        return False
    if new == MessageStatus.FAILED:
        return current in (MessageStatus.QUEUED, MessageStatus.SENT)
    if current == MessageStatus.FAILED:
        return new in (MessageStatus.DELIVERED, MessageStatus.READ)
    return _RANK[new] > _RANK[current]


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """What one recorded change did (``changed`` is False for a no-op)."""

    message_id: str | None
    status: MessageStatus | None
    changed: bool
    pending: bool = False


def _lock_key(inbox_id: str, provider_message_id: str) -> int:
    digest = hashlib.blake2b(
        f"status\x00{inbox_id}\x00{provider_message_id}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


async def _lock(conn: Conn, inbox_id: str, provider_message_id: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(inbox_id, provider_message_id))


def _event(
    row: Any,
    status: MessageStatus,
    *,
    provider_message_id: str | None,
    error_code: str | None,
    error_message: str | None,
    actor: Actor,
    correlation_id: str | None,
    causation_id: str | None = None,
) -> Event[Any]:
    return make_event(
        MessageStatusChanged(
            message_id=row["id"],
            inbox_id=row["inbox_id"],
            status=status,
            previous_status=MessageStatus(row["status"]),
            provider_message_id=provider_message_id,
            error_code=error_code,
            error_message=error_message,
        ),
        account_id=row["account_id"],
        conversation_id=row["conversation_id"],
        actor=actor,
        correlation_id=correlation_id,
        causation_id=causation_id,
    )


_SELECT = """SELECT id, account_id, conversation_id, inbox_id, status, provider_message_id
               FROM messages"""


async def _set(
    conn: Conn,
    row: Any,
    status: MessageStatus,
    error_code: str | None,
    error_message: str | None,
) -> None:
    failed = status == MessageStatus.FAILED
    await conn.execute(
        """UPDATE messages SET status = $2, error_code = $3, error_message = $4,
                  updated_at = now()
            WHERE id = $1""",
        row["id"],
        status.value,
        error_code if failed else None,
        error_message if failed else None,
    )


async def _apply_pending(
    conn: Conn, row: Any, correlation_id: str | None, actor: Actor
) -> list[Event[Any]]:
    """Reports that came before the provider id was known, oldest first."""
    pending = await conn.fetch(
        """DELETE FROM message_status_pending
            WHERE inbox_id = $1 AND provider_message_id = $2
           RETURNING status, error_code, error_message, received_at""",
        row["inbox_id"],
        row["provider_message_id"],
    )
    events: list[Event[Any]] = []
    current = dict(row)
    for report in sorted(pending, key=lambda r: (r["received_at"], _RANK.get(r["status"], 9))):
        status = MessageStatus(report["status"])
        if not may_change(MessageStatus(current["status"]), status):
            continue
        await _set(conn, current, status, report["error_code"], report["error_message"])
        events.append(
            _event(
                current,
                status,
                provider_message_id=current["provider_message_id"],
                error_code=report["error_code"],
                error_message=report["error_message"],
                actor=actor,
                correlation_id=correlation_id,
            )
        )
        current["status"] = status.value
    return events


async def record_sent(
    conn: Conn,
    *,
    message_id: str,
    provider_message_id: str,
    channel: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> Outcome:
    """The provider accepted a queued message (and any reports that raced ahead are applied)."""
    inbox_id = await conn.fetchval("SELECT inbox_id FROM messages WHERE id = $1", message_id)
    if inbox_id is None:
        return Outcome(None, None, False)
    await _lock(conn, inbox_id, provider_message_id)
    row = await conn.fetchrow(_SELECT + " WHERE id = $1 FOR UPDATE", message_id)
    assert row is not None
    if row["status"] != MessageStatus.QUEUED:
        return Outcome(message_id, MessageStatus(row["status"]), False)
    actor = Actor(ActorKind.INTEGRATION, channel)
    taken = await conn.fetchval(
        "SELECT id FROM messages WHERE inbox_id = $1 AND provider_message_id = $2",
        inbox_id,
        provider_message_id,
    )
    if taken is not None:  # a provider (a customer's system) reused an id: keep ours apart
        log.warning(
            "provider message id already used in the inbox; recorded without it",
            extra={"message_id": message_id, "provider_message_id": provider_message_id},
        )
    recorded = None if taken is not None else provider_message_id
    await conn.execute(
        """UPDATE messages SET status = 'sent', provider_message_id = $2, error_code = NULL,
                  error_message = NULL, updated_at = now()
            WHERE id = $1""",
        message_id,
        recorded,
    )
    events = [
        _event(
            row,
            MessageStatus.SENT,
            provider_message_id=recorded,
            error_code=None,
            error_message=None,
            actor=actor,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )
    ]
    if recorded is not None:
        sent = {**dict(row), "status": "sent", "provider_message_id": recorded}
        events += await _apply_pending(conn, sent, correlation_id, actor)
    await append_events(conn, events)
    final = events[-1].payload.status if events else MessageStatus.SENT
    return Outcome(message_id, final, True)


async def record_failed(
    conn: Conn,
    *,
    message_id: str,
    error_code: str,
    error_message: str,
    channel: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> Outcome:
    """A queued message could not be handed to the provider (refused, or retries exhausted)."""
    row = await conn.fetchrow(_SELECT + " WHERE id = $1 FOR UPDATE", message_id)
    if row is None:
        return Outcome(None, None, False)
    if row["status"] != MessageStatus.QUEUED:
        return Outcome(message_id, MessageStatus(row["status"]), False)
    await _set(conn, row, MessageStatus.FAILED, error_code, error_message)
    event = _event(
        row,
        MessageStatus.FAILED,
        provider_message_id=None,
        error_code=error_code,
        error_message=error_message,
        actor=Actor(ActorKind.INTEGRATION, channel),
        correlation_id=correlation_id,
        causation_id=causation_id,
    )
    await append_events(conn, [event])
    return Outcome(message_id, MessageStatus.FAILED, True)


async def apply_status_updates(
    conn: Conn,
    *,
    inbox_id: str,
    channel: str,
    updates: Sequence[StatusUpdate],
    correlation_id: str | None = None,
) -> list[Outcome]:
    """Providers' status callbacks for messages of one inbox; run inside a transaction."""
    outcomes: list[Outcome] = []
    events: list[Event[Any]] = []
    actor = Actor(ActorKind.INTEGRATION, channel)
    # one lock order for every transaction: no deadlock between callbacks of several messages
    for update in sorted(updates, key=lambda u: _lock_key(inbox_id, u.provider_message_id)):
        await _lock(conn, inbox_id, update.provider_message_id)
    for update in updates:
        row = await conn.fetchrow(
            _SELECT + " WHERE inbox_id = $1 AND provider_message_id = $2 FOR UPDATE",
            inbox_id,
            update.provider_message_id,
        )
        if row is None:
            await conn.execute(
                """INSERT INTO message_status_pending (inbox_id, provider_message_id, status,
                                                       provider_status, error_code, error_message)
                   VALUES ($1, $2, $3, $4, $5, $6)
                   ON CONFLICT DO NOTHING""",
                inbox_id,
                update.provider_message_id,
                update.status.value,
                update.provider_status,
                update.error_code,
                update.error_message,
            )
            outcomes.append(Outcome(None, update.status, False, pending=True))
            continue
        current = MessageStatus(row["status"])
        if row["status"] == MessageStatus.RECEIVED or not may_change(current, update.status):
            outcomes.append(Outcome(row["id"], current, False))
            continue
        await _set(conn, row, update.status, update.error_code, update.error_message)
        events.append(
            _event(
                row,
                update.status,
                provider_message_id=update.provider_message_id,
                error_code=update.error_code,
                error_message=update.error_message,
                actor=actor,
                correlation_id=correlation_id,
            )
        )
        outcomes.append(Outcome(row["id"], update.status, True))
    await append_events(conn, events)
    return outcomes


INTERRUPTED = "delivery_interrupted"


async def fail_interrupted(conn: Conn, *, older_than_seconds: float) -> int:
    """Replies whose send started long ago but was never recorded (the process stopped mid-send):
    failed, since they may or may not have reached the provider and are never sent twice. Also
    drops status reports no message claimed within a day."""
    rows = await conn.fetch(
        _SELECT
        + """ WHERE status = 'queued' AND delivery_started_at IS NOT NULL
                AND delivery_started_at < now() - make_interval(secs => $1)
              FOR UPDATE SKIP LOCKED""",
        older_than_seconds,
    )
    message = "the hub stopped while sending; the message may not have been delivered"
    events = []
    for row in rows:
        await _set(conn, row, MessageStatus.FAILED, INTERRUPTED, message)
        events.append(
            _event(
                row,
                MessageStatus.FAILED,
                provider_message_id=None,
                error_code=INTERRUPTED,
                error_message=message,
                actor=Actor(ActorKind.SYSTEM),
                correlation_id=None,
            )
        )
    await conn.execute(
        "DELETE FROM message_status_pending WHERE received_at < now() - interval '1 day'"
    )
    await append_events(conn, events)
    return len(rows)
