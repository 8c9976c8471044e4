"""Writing to the analytics store: rows in, one insert per table, counted in ``/metrics``.

A batch is written table by table. If the store fails half-way, the bus hands the same batch again
and the tables that were already written get the same rows again: their sorting key holds the
event id, so ``FINAL`` reads (and merges) count them once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from datetime import date

from prometheus_client import Counter, Gauge

from analytics import rollups
from analytics.backend import AnalyticsUnavailable, Backend, rows_bytes
from analytics.rows import Rows
from analytics.schema import ensure_schema
from hub.metrics import REGISTRY

ROWS_WRITTEN = Counter(
    "hub_analytics_rows_written_total",
    "Rows written to the analytics store (a replayed event is written again; reads count it once).",
    ["table"],
    registry=REGISTRY,
)
UNAVAILABLE = Gauge(
    "hub_analytics_unavailable",
    "1 while the analytics store refuses connections (the consumer retries and catches up).",
    registry=REGISTRY,
)
LAST_WRITE = Gauge(
    "hub_analytics_last_write_timestamp_seconds",
    "When the analytics consumer last wrote a batch (Unix time).",
    registry=REGISTRY,
)


class AnalyticsStore:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.problem: str | None = None
        self.last_write = 0.0
        self._schema_ready = False
        self._schema_lock = asyncio.Lock()

    async def ready(self) -> None:
        """Create the tables once (and again after an outage at start)."""
        if self._schema_ready:
            return
        async with self._schema_lock:
            if not self._schema_ready:
                await self._guard(ensure_schema(self.backend))
                self._schema_ready = True

    async def _guard(self, work: Awaitable[None]) -> None:
        try:
            await work
        except AnalyticsUnavailable as exc:
            self.problem = str(exc)
            UNAVAILABLE.set(1)
            raise
        if self.problem is not None:
            self.problem = None
            UNAVAILABLE.set(0)

    async def write(self, rows: Rows) -> None:
        await self.ready()
        for table, items in rows.tables().items():
            if items:
                await self._guard(self.backend.insert(table, rows_bytes(items), len(items)))
                ROWS_WRITTEN.labels(table).inc(len(items))
        # after the rows are in: the days they touched read raw until rebuilt (analytics.rollups)
        await self._guard(rollups.mark(self.backend, rollups.utc_days(rows.moments())))
        self.last_write = time.time()
        LAST_WRITE.set(self.last_write)

    async def erase_contact(
        self,
        account_id: str,
        contact_id: str,
        conversation_ids: Sequence[str] = (),
        message_ids: Sequence[str] = (),
    ) -> None:
        await self.ready()
        await self._guard(
            erase_contact(self.backend, account_id, contact_id, conversation_ids, message_ids)
        )

    async def close(self) -> None:
        await self.backend.close()


async def erase_contact(
    backend: Backend,
    account_id: str,
    contact_id: str,
    conversation_ids: Sequence[str] = (),
    message_ids: Sequence[str] = (),
) -> None:
    """Remove a contact from analytics (``contact.erased``): every row of their conversations,
    their messages and any row naming them goes, from the event tables and the per-conversation
    rollups; the days those rows were on are marked, so reports read them raw (without the
    contact) until the volume buckets are rebuilt. Synchronous mutations, so it returns once the
    rows are gone; running it again finds nothing (idempotent)."""
    db = backend.database
    params = {
        "account": account_id,
        "contact": contact_id,
        "conversations": list(conversation_ids),
        "messages": list(message_ids),
    }
    theirs = {
        "messages": "(contact_id = {contact:String} OR has({conversations:Array(String)}, "
        "conversation_id) OR has({messages:Array(String)}, message_id))",
        "conversation_events": "(contact_id = {contact:String} OR "
        "has({conversations:Array(String)}, conversation_id))",
        "call_events": "has({conversations:Array(String)}, conversation_id)",
        "ratings": "(contact_id = {contact:String} OR "
        "has({conversations:Array(String)}, conversation_id))",
        "message_languages": "(has({conversations:Array(String)}, conversation_id) OR "
        "has({messages:Array(String)}, message_id))",
        "sla_events": "has({conversations:Array(String)}, conversation_id)",
    }
    # the conversations that contact rows belong to, beyond those the event named
    found = await backend.query(
        f"""SELECT DISTINCT conversation_id FROM {db}.conversation_events
             WHERE account_id = {{account:String}} AND contact_id = {{contact:String}}""",
        params,
    )
    params["conversations"] = sorted({*conversation_ids, *(r[0] for r in found)})
    days: set[date] = set()
    for table, condition in theirs.items():
        rows = await backend.query(
            f"""SELECT DISTINCT toString(toDate(occurred_at, 'UTC')) FROM {db}.{table}
                 WHERE account_id = {{account:String}} AND {condition}""",
            params,
        )
        days.update(date.fromisoformat(r[0]) for r in rows)
    for table, condition in theirs.items():
        await backend.execute(
            f"ALTER TABLE {db}.{table} DELETE "
            f"WHERE account_id = {{account:String}} AND {condition} SETTINGS mutations_sync = 2",
            params,
        )
    for table in ("first_replies", "resolutions", "next_replies"):
        await backend.execute(
            f"ALTER TABLE {db}.{table} DELETE WHERE account_id = {{account:String}} "
            "AND has({conversations:Array(String)}, conversation_id) SETTINGS mutations_sync = 2",
            params,
        )
    await rollups.mark(backend, days)
