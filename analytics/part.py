"""The analytics part: the store reports read, and the consumer that keeps it fed.

In worker processes (and ``all``) it subscribes the ``analytics`` group to the conversations topic
and writes every message, conversation and call event into ClickHouse in large batches (up to 5,000
records, waiting up to half a second for a fuller batch). In gateways it only opens the store, for
the reports. The embedded store (chDB) lives in one process's data directory, so split roles need
``CLICKHOUSE_URL``, except role ``all`` split by ``HUB_WORKER_PROCESSES``: its worker child owns
chDB and the gateway's reports are answered by it (``analytics.forwarded``).

An outage of the store is transient: the bus retries the batch without limit and the consumer
catches up from where it stopped. ``/readyz`` shows the state and the group's lag, ``/metrics``
the lag (``hub_bus_lag{group="analytics"}``) and the analytics counters.

Erasure: the consumer also follows the contacts topic; ``contact.erased`` removes the contact's
conversations and messages from every analytics table (:func:`analytics.store.erase_contact`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from prometheus_client import Histogram

from analytics import forwarded, rollups
from analytics.backend import (
    AnalyticsQueryError,
    AnalyticsUnavailable,
    Backend,
    open_backend,
    transient_errors,
)
from analytics.rows import build_rows, inbox_of
from analytics.store import AnalyticsStore
from hub.bus import Bus, BusMessage, ConsumerOptions, Subscription
from hub.consumers.stream import StreamConsumer
from hub.contracts.part import WORKERS, Layer
from hub.events.envelope import Event, Payload, UnknownEventType, decode_event
from hub.events.types import CONTACTS, CONVERSATIONS, ContactErased
from hub.metrics import REGISTRY
from hub.store.db import Conn

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger(__name__)

GROUP = "analytics"
MAX_BATCH = 5000
LINGER = 0.5
#: how often workers rebuild the pre-aggregated rows of closed days written to (analytics.rollups)
REBUILD_EVERY_S = 60.0


class Channels:
    """Inbox id to channel (payloads of replies and conversations name only the inbox); an
    inbox's channel never changes, so the map only grows."""

    def __init__(self, pool: asyncpg.Pool[Any] | Conn) -> None:
        self._pool = pool
        self._known: dict[str, str] = {}

    async def of(self, inboxes: set[str]) -> Mapping[str, str]:
        missing = [i for i in inboxes if i and i not in self._known]
        if missing:
            rows = await self._pool.fetch(
                "SELECT id, channel FROM inboxes WHERE id = ANY($1::text[])", missing
            )
            self._known.update((r["id"], r["channel"]) for r in rows)
        return self._known


#: how fresh the reports are: from an event's ``occurred_at`` (its commit at ingest) to its rows
#: in the analytics store (bench/analytics/lag.py reads it)
EVENT_LAG = Histogram(
    "hub_analytics_event_lag_seconds",
    "Seconds from an event's occurred_at to its rows written to the analytics store.",
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0),
    registry=REGISTRY,
)


class AnalyticsConsumer:
    def __init__(self, store: AnalyticsStore, pool: asyncpg.Pool[Any]) -> None:
        self._store = store
        self._channels = Channels(pool)

    async def subscribe(self, bus: Bus, options: ConsumerOptions) -> list[Subscription]:
        options = dataclasses.replace(options, transient=(*options.transient, *transient_errors()))
        return [
            await bus.subscribe(CONVERSATIONS, GROUP, self.handle, options),
            await bus.subscribe(CONTACTS, GROUP, self.handle, options),
        ]

    async def handle(self, batch: Sequence[BusMessage]) -> None:
        events: list[Event[Payload]] = []
        for message in batch:
            try:
                events.append(decode_event(message.value))
            except UnknownEventType:  # a newer producer's type: nothing to count here
                continue
        channels = await self._channels.of({inbox_of(e.payload) or "" for e in events})
        rows = build_rows(events, channels)
        if len(rows):
            await self._store.write(rows)
        now = datetime.now(UTC)
        for event in events:
            EVENT_LAG.observe((now - event.occurred_at).total_seconds())
        for event in events:  # after the rows: an erasure also removes what this batch wrote
            if isinstance(event.payload, ContactErased):
                erased = event.payload
                await self._store.erase_contact(
                    event.account_id,
                    erased.contact_id,
                    erased.conversation_ids,
                    erased.message_ids,
                )


class AnalyticsPart:
    name = "analytics"
    layer: Layer = "consumer"
    #: gateways serve the reports; workers also run the consumer
    roles = frozenset({"all", "gateway", "worker"})

    def __init__(self, *, owns_chdb: bool = False, reports_from: str | None = None) -> None:
        #: role ``all`` split in two (``HUB_WORKER_PROCESSES``): the worker child opens chDB
        #: (``owns_chdb``) and the gateway sends its report queries there (``reports_from``, the
        #: child's loopback address); see ``analytics.forwarded``
        self.owns_chdb = owns_chdb
        self.reports_from = reports_from
        self.store: AnalyticsStore | None = None
        self.state = "off"
        self._consumer: StreamConsumer | None = None
        self._rebuilder: asyncio.Task[None] | None = None
        self._hub: Hub | None = None

    async def start(self, hub: Hub) -> None:
        config = hub.config
        self._hub = hub
        if not config.analytics:
            self.state = "off (HUB_ANALYTICS)"
            return
        if not config.clickhouse_url and self.reports_from:
            key = hub.box.derive(forwarded.PURPOSE)
            backend: Backend = forwarded.ForwardedBackend(
                self.reports_from, key, config.clickhouse_database
            )
            self.store = AnalyticsStore(backend)  # the child makes the tables
            self.state = backend.kind
            return
        if not config.clickhouse_url and config.role != "all" and not self.owns_chdb:
            self.state = "off: split roles need CLICKHOUSE_URL (chDB lives in one process)"
            log.warning("analytics %s", self.state)
            return
        backend = open_backend(config.data_dir, config.clickhouse_database, config.clickhouse_url)
        self.store = AnalyticsStore(backend)
        self.state = backend.kind
        try:
            await self.store.ready()
        except transient_errors() as exc:  # the consumer retries; reports answer 503 meanwhile
            log.warning("analytics store unavailable at start: %s", exc)
        if hub.bus is not None and config.role in WORKERS:
            store = self.store
            self._consumer = StreamConsumer(
                GROUP,
                lambda h: AnalyticsConsumer(store, h.pool),
                max_batch=MAX_BATCH,
                linger=LINGER,
            )
            await self._consumer.start(hub)
            self._rebuilder = asyncio.create_task(self._rebuild_forever(store))

    async def _rebuild_forever(self, store: AnalyticsStore) -> None:
        """Rebuild closed days that were written to; an outage or a refused statement is logged
        and tried again next time (the reports stay exact meanwhile: they read those days raw)."""
        while True:
            await asyncio.sleep(REBUILD_EVERY_S)
            try:
                await store.ready()
                days = await rollups.rebuild_pending(store.backend)
            except (AnalyticsUnavailable, AnalyticsQueryError) as exc:
                log.warning("analytics rollup rebuild failed, retrying later: %s", exc)
                continue
            if days:
                log.info("analytics rollups rebuilt for %d days from %s", len(days), days[0])

    async def stop(self) -> None:
        if self._rebuilder is not None:
            self._rebuilder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rebuilder
            self._rebuilder = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self.store is not None:
            await self.store.close()
            self.store = None

    def lag(self) -> int:
        if self._hub is None or self._hub.bus is None or self._consumer is None:
            return 0
        return sum(n for (group, _), n in self._hub.bus.lag().items() if group == GROUP)

    def health(self) -> Mapping[str, Any]:
        if self.store is None:
            return {"analytics": self.state}
        problem = self.store.problem
        since = self.store.last_write
        return {
            "analytics": f"unavailable: {problem}" if problem else self.state,
            "analytics_lag": self.lag(),
            "analytics_last_write_s_ago": round(time.time() - since, 1) if since else None,
        }


def analytics_part(*, owns_chdb: bool = False, reports_from: str | None = None) -> AnalyticsPart:
    return AnalyticsPart(owns_chdb=owns_chdb, reports_from=reports_from)
