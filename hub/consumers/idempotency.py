"""Consumer idempotency: claim event ids inside the consumer's own transaction.

A consumer whose effect is not keyed by the event id itself calls :func:`claim` first and applies
only the events it returns; a redelivered event is then a no-op, and the claim commits or rolls back
together with the effect.
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.store.db import Conn


async def claim(conn: Conn, consumer: str, event_ids: Sequence[str]) -> set[str]:
    """Record ``event_ids`` as processed by ``consumer``; return the ones not seen before."""
    rows = await conn.fetch(
        """INSERT INTO processed_events (consumer, event_id)
           SELECT $1, id FROM unnest($2::text[]) AS id
           ON CONFLICT DO NOTHING
           RETURNING event_id""",
        consumer,
        list(event_ids),
    )
    return {r["event_id"] for r in rows}
