"""Recording an agent's presence: the status the realtime layer sees, kept in ``agent_presence``
and announced as ``agent.presence_changed`` when it differs from the last one recorded.

The realtime layer calls this whenever an agent's effective status may have changed; several
processes may do so for one change (or in a race). The row is locked first and the current status
is read under the lock (``current``), so concurrent callers serialise and each change is recorded
once, in the order it happened.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from hub.contracts.presence import STATUSES
from hub.events import Actor, ActorKind, make_event
from hub.events.types import AgentPresenceChanged
from hub.store.db import Conn
from hub.store.outbox import append_events


async def record_presence(
    conn: Conn,
    *,
    account_id: str,
    agent_id: str,
    current: Callable[[], Awaitable[str]],
    occurred_at: datetime | None = None,
    by_system: bool = False,
) -> str | None:
    """Run inside a transaction. ``current`` gives the agent's status now (read after the lock);
    returns it when it changed (and the event was written), None when it did not. ``by_system``:
    the hub, not the agent, made the change (a sweep after a crash)."""
    await conn.execute(
        """INSERT INTO agent_presence (account_id, agent_id, status) VALUES ($1, $2, 'offline')
           ON CONFLICT (account_id, agent_id) DO NOTHING""",
        account_id,
        agent_id,
    )
    previous: str = await conn.fetchval(
        "SELECT status FROM agent_presence WHERE account_id = $1 AND agent_id = $2 FOR UPDATE",
        account_id,
        agent_id,
    )
    status = await current()
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    if status == previous:
        return None
    event = make_event(
        AgentPresenceChanged(agent_id=agent_id, status=status, previous=previous),
        account_id=account_id,
        conversation_id=None,
        actor=Actor(ActorKind.SYSTEM, None) if by_system else Actor(ActorKind.AGENT, agent_id),
        occurred_at=occurred_at,
    )
    await conn.execute(
        """UPDATE agent_presence SET status = $3, changed_at = $4
            WHERE account_id = $1 AND agent_id = $2""",
        account_id,
        agent_id,
        status,
        event.occurred_at,
    )
    await append_events(conn, [event])
    return status


async def shown_present(conn: Conn) -> list[tuple[str, str]]:
    """(account, agent) of every agent whose last recorded status is not offline."""
    rows = await conn.fetch(
        "SELECT account_id, agent_id FROM agent_presence WHERE status <> 'offline' "
        "ORDER BY account_id, agent_id"
    )
    return [(r["account_id"], r["agent_id"]) for r in rows]
