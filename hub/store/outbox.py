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
    # the lock is taken while the subquery is scanned, before setval runs; the notification
    # is delivered at commit, like the rows
    last: int = await conn.fetchval(
        f"""SELECT setval('outbox_seq', nextval('outbox_seq') + $2 - 1),
                   pg_notify('{NOTIFY_CHANNEL}', '')
              FROM (SELECT pg_advisory_xact_lock($1)) AS locked""",
        OUTBOX_LOCK,
        n,
    )
    first = last - n + 1
    await conn.copy_records_to_table(
        "outbox",
        records=[
            (first + n, e.id, e.type, e.correlation_id, e.topic, e.key, encode_event(e))
            for n, e in enumerate(events)
        ],
        columns=("seq", "event_id", "type", "correlation_id", "topic", "key", "payload"),
    )
