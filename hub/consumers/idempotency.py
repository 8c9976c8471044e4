"""Consumer idempotency: claim event ids inside the consumer's own transaction.

A consumer whose effect is not keyed by the event id itself claims the ids first and applies only
the events returned; a redelivered event is then a no-op, and the claim commits or rolls back
together with the effect. ``CLAIM_SQL`` also works as a CTE, making claim and effect one statement.
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.store.db import Conn

#: claims ``$2::text[]`` for consumer ``$1`` and returns the ids not seen before
CLAIM_SQL = """INSERT INTO processed_events (consumer, event_id)
               SELECT $1, id FROM unnest($2::text[]) AS id
               ON CONFLICT DO NOTHING
               RETURNING event_id"""


async def claim(conn: Conn, consumer: str, event_ids: Sequence[str]) -> set[str]:
    """Record ``event_ids`` as processed by ``consumer``; return the ones not seen before."""
    rows = await conn.fetch(CLAIM_SQL, consumer, list(event_ids))
    return {r["event_id"] for r in rows}
