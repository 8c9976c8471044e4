"""Writing to the analytics store: rows in, one insert per table, counted in ``/metrics``.

A batch is written table by table. If the store fails half-way, the bus hands the same batch again
and the tables that were already written get the same rows again: their sorting key holds the
event id, so ``FINAL`` reads (and merges) count them once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from prometheus_client import Counter, Gauge

from analytics.backend import AnalyticsUnavailable, Backend, rows_bytes
from analytics.rows import Rows
from analytics.schema import TABLES, ensure_schema
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
        self.last_write = time.time()
        LAST_WRITE.set(self.last_write)

    async def erase_contact(self, account_id: str, contact_id: str) -> None:
        await erase_contact(self.backend, account_id, contact_id)

    async def close(self) -> None:
        await self.backend.close()


async def erase_contact(backend: Backend, account_id: str, contact_id: str) -> None:
    """Remove a contact from analytics: the store keeps no text or names, so what identifies the
    contact is its id, blanked in every row (counts and times stay, no longer linked to anyone).
    Synchronous mutations, so the function returns once the rows are rewritten."""
    for table in ("messages", "conversation_events"):
        assert table in TABLES
        await backend.execute(
            f"ALTER TABLE {backend.database}.{table} UPDATE contact_id = '' "
            "WHERE account_id = {account:String} AND contact_id = {contact:String} "
            "SETTINGS mutations_sync = 2",
            {"account": account_id, "contact": contact_id},
        )
