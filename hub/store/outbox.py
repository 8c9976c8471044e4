"""Writing events to the transactional outbox, inside the caller's transaction.

Ordering rule: ``seq`` values are allocated under a transaction-level advisory lock that is held
until commit. Two transactions can therefore never commit their outbox rows out of ``seq`` order,
so the relay can read ``seq > cursor`` and never skip a row that commits late. Call
:func:`append_events` as the last statement of a transaction to keep the locked window short.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hub.events import Event, encode_event
from hub.store.db import Conn

OUTBOX_LOCK = 0x4855424F  # "HUBO"
NOTIFY_CHANNEL = "hub_outbox"


async def append_events(conn: Conn, events: Sequence[Event[Any]]) -> None:
    if not events:
        return
    n = len(events)
    # the lock is taken while the subquery is scanned, before setval runs
    last: int = await conn.fetchval(
        """SELECT setval('outbox_seq', nextval('outbox_seq') + $2 - 1)
             FROM (SELECT pg_advisory_xact_lock($1)) AS locked""",
        OUTBOX_LOCK,
        n,
    )
    first = last - n + 1
    await conn.execute(
        f"""WITH written AS (
                INSERT INTO outbox (seq, event_id, type, correlation_id, topic, key, payload)
                SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],
                                     $5::text[], $6::text[], $7::bytea[])
                RETURNING 1)
            SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM (SELECT count(*) FROM written) AS w""",
        list(range(first, last + 1)),
        [e.id for e in events],
        [e.type for e in events],
        [e.correlation_id for e in events],
        [e.topic for e in events],
        [e.key for e in events],
        [encode_event(e) for e in events],
    )
