"""Rebuilding the analytics store from PostgreSQL's ``event_log`` (``hub analytics backfill``) and
comparing the two (``hub analytics verify``).

The backfill reads the journal in id order (ULIDs: time order) in pages, writes them through the
same rows and insert path as the consumer, and records the last id written in the store's ``meta``
table: a stopped backfill resumes there, and one run twice counts nothing twice (the tables
collapse repeats). With the embedded store, run it while the hub is stopped (chDB's data folder
belongs to one process).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from analytics import reports
from analytics.backend import Backend, rows_bytes
from analytics.part import Channels
from analytics.rows import build_rows
from analytics.store import AnalyticsStore
from hub.events.envelope import Event, Payload, UnknownEventType, decode_event
from hub.store.db import Conn

CURSOR = "backfill_cursor"
#: event types per analytics table, for ``verify``
TYPES = {
    "messages": "type IN ('message.received', 'message.created')",
    "conversation_events": "type IN ('conversation.created', 'conversation.updated')",
    "call_events": "type LIKE 'call.%'",
    "ratings": "type = 'conversation.rated'",
    # analyses without a language write no row
    "message_languages": "type = 'message.analysed' "
    "AND coalesce(event->'payload'->>'language', '') <> ''",
    "sla_events": "type IN ('sla.warning', 'sla.breached')",
    "agent_presence": "type = 'agent.presence_changed'",
}


async def _cursor(backend: Backend) -> str:
    found = await backend.query(
        f"SELECT argMax(value, updated_at) FROM {backend.database}.meta WHERE name = {{n:String}}",
        {"n": CURSOR},
    )
    return str(found[0][0]) if found and found[0][0] else ""


async def _save_cursor(backend: Backend, value: str) -> None:
    line = rows_bytes([_Meta(CURSOR, value, datetime.now(UTC))])
    await backend.insert("meta", line, 1)


class _Meta(msgspec.Struct, array_like=True):
    name: str
    value: str
    updated_at: datetime


async def backfill(
    conn: Conn,
    store: AnalyticsStore,
    *,
    page: int = 5000,
    restart: bool = False,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> int:
    """Write every journal event after the saved cursor; returns how many were read."""
    await store.ready()
    backend = store.backend
    after = "" if restart else await _cursor(backend)
    total = await conn.fetchval("SELECT count(*) FROM event_log WHERE id > $1", after)
    channels = Channels(conn)
    done = 0
    progress(done, total)
    while True:
        rows = await conn.fetch(
            "SELECT id, event::text AS event FROM event_log WHERE id > $1 ORDER BY id LIMIT $2",
            after,
            page,
        )
        if not rows:
            break
        events: list[Event[Payload]] = []
        for row in rows:
            try:
                events.append(decode_event(row["event"].encode()))
            except UnknownEventType:
                continue
        inboxes = {getattr(e.payload, "inbox_id", "") or "" for e in events}
        await store.write(build_rows(events, await channels.of(inboxes)))
        after = rows[-1]["id"]
        await _save_cursor(backend, after)
        done += len(rows)
        progress(done, total)
    return done


async def verify(conn: Conn, backend: Backend) -> dict[str, dict[str, int]]:
    """Per table: events in PostgreSQL's journal and rows in the analytics store."""
    stored = await reports.counts(backend)
    compared: dict[str, dict[str, int]] = {}
    for table, condition in TYPES.items():
        journal = await conn.fetchval(f"SELECT count(*) FROM event_log WHERE {condition}")
        compared[table] = {"postgres": int(journal), "analytics": stored[table]}
    return compared
