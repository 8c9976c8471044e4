"""Service-level events: the automation part's SLA clocks announce a warning or a breach through
this action (the core's actions are the only writers of events), in the transaction that marks the
clock as fired, so each is emitted exactly once."""

from __future__ import annotations

from datetime import datetime

from hub.events import Actor, ActorKind, make_event
from hub.events.types import SlaBreached, SlaWarning
from hub.store.db import Conn
from hub.store.outbox import append_events

ACTOR = Actor(ActorKind.SYSTEM, "sla")


async def announce_sla(
    conn: Conn,
    *,
    breached: bool,
    account_id: str,
    conversation_id: str,
    inbox_id: str,
    policy_id: str,
    metric: str,
    cycle: int,
    due_at: datetime,
) -> str:
    """Emit ``sla.breached`` (``breached``) or ``sla.warning``; the event id."""
    kind = SlaBreached if breached else SlaWarning
    event = make_event(
        kind(inbox_id=inbox_id, policy_id=policy_id, metric=metric, cycle=cycle, due_at=due_at),
        account_id=account_id,
        conversation_id=conversation_id,
        actor=ACTOR,
    )
    await append_events(conn, [event])
    return event.id
