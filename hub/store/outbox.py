"""Writing events to the transactional outbox, inside the caller's transaction.

Ordering rule: ``seq`` values are allocated under a transaction-level advisory lock that is held
until commit. Two transactions can therefore never commit their outbox rows out of ``seq`` order,
so the relay can read ``seq > cursor`` and never skip a row that commits late. Call
:func:`append_events` as the last statement of a transaction to keep the locked window short.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from hub.events import Event, encode_event
from hub.store.db import Conn

OUTBOX_LOCK = 0x4855424F  # "HUBO"
NOTIFY_CHANNEL = "hub_outbox"

#: up to this many events go in with one statement; more with COPY, cheaper per row but a round
#: trip of its own
SMALL_BATCH = 64

# The CTE is evaluated once (volatile functions): the lock is taken while its subquery is scanned,
# before setval runs; the notification is delivered at commit, like the rows.
_ALLOCATE = f"""SELECT setval('outbox_seq', nextval('outbox_seq') + $2 - 1) AS last,
                       pg_notify('{NOTIFY_CHANNEL}', '')
                  FROM (SELECT pg_advisory_xact_lock($1)) AS locked"""

_ALLOCATED = f"allocated AS MATERIALIZED ({_ALLOCATE})"
_INSERT = """INSERT INTO outbox (seq, event_id, type, correlation_id, topic, key, payload)
SELECT a.last - $2 + x.ord, x.event_id, x.type, x.correlation_id, x.topic, x.key, x.payload
  FROM allocated a,
       unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[])
       WITH ORDINALITY AS x(event_id, type, correlation_id, topic, key, payload, ord)"""
_INSERT_SMALL = f"WITH {_ALLOCATED}\n{_INSERT}"


def _numbered_from(sql: str, first: int) -> str:
    return re.sub(r"\$(\d+)", lambda m: f"${int(m[1]) + first - 1}", sql)


def appended_after(ctes: str, params: int) -> str:
    """One statement that runs the caller's data-modifying ``ctes`` (``name AS (...)``, with
    parameters $1 to ``params``) and appends a small batch of events (up to
    :data:`SMALL_BATCH`, arguments from :func:`event_arguments`, numbered on from there): the
    transaction's last two statements in one round trip."""
    first = params + 1
    return f"WITH {ctes},\n{_numbered_from(_ALLOCATED, first)}\n{_numbered_from(_INSERT, first)}"


def event_arguments(events: Sequence[Event[Any]]) -> list[Any]:
    return [
        OUTBOX_LOCK,
        len(events),
        [e.id for e in events],
        [e.type for e in events],
        [e.correlation_id for e in events],
        [e.topic for e in events],
        [e.key for e in events],
        [encode_event(e) for e in events],
    ]


async def append_events(conn: Conn, events: Sequence[Event[Any]]) -> None:
    if not events:
        return
    n = len(events)
    if n <= SMALL_BATCH:
        await conn.execute(_INSERT_SMALL, *event_arguments(events))
        return
    last: int = await conn.fetchval(_ALLOCATE, OUTBOX_LOCK, n)
    first = last - n + 1
    await conn.copy_records_to_table(
        "outbox",
        records=[
            (first + n, e.id, e.type, e.correlation_id, e.topic, e.key, encode_event(e))
            for n, e in enumerate(events)
        ],
        columns=("seq", "event_id", "type", "correlation_id", "topic", "key", "payload"),
    )
