"""Prometheus metrics of the hub, defined once and shared by every module that counts something."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)

MESSAGES_INGESTED = Counter(
    "hub_messages_ingested_total",
    "Inbound messages stored (duplicates of an already stored message are not counted).",
    ["channel"],
    registry=REGISTRY,
)
MESSAGES_DUPLICATE = Counter(
    "hub_messages_duplicate_total",
    "Inbound messages whose provider id was already stored (provider retries).",
    ["channel"],
    registry=REGISTRY,
)
WEBHOOKS_REJECTED = Counter(
    "hub_webhooks_rejected_total",
    "Webhook requests refused with a 4xx, by reason.",
    ["channel", "code"],
    registry=REGISTRY,
)
GROUP_COMMIT_SIZE = Histogram(
    "hub_group_commit_size",
    "Items committed per group-commit transaction.",
    ["committer"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
    registry=REGISTRY,
)
#: seconds, for the steps of the hot path (a millisecond to a stall)
STEP_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10)
GROUP_COMMIT_SECONDS = Histogram(
    "hub_group_commit_seconds",
    "One group-commit transaction, begin to commit.",
    ["committer"],
    buckets=STEP_BUCKETS,
    registry=REGISTRY,
)
GROUP_COMMIT_WAIT = Histogram(
    "hub_group_commit_wait_seconds",
    "From an item's submission to its result: waiting for the committer, then its transaction.",
    ["committer"],
    buckets=STEP_BUCKETS,
    registry=REGISTRY,
)
EVENT_AGE = Histogram(
    "hub_event_age_seconds",
    "How old the oldest event of a batch is (since it occurred, in the ingest) at each step "
    "towards the agents' sockets: published by the outbox relay, logged for replay, sent.",
    ["step"],
    buckets=STEP_BUCKETS,
    registry=REGISTRY,
)


def observe_age(step: str, occurred_at: datetime | None) -> None:
    """:data:`EVENT_AGE` of the event that occurred at ``occurred_at``, now at ``step`` (nothing
    for an event whose time could not be read)."""
    if occurred_at is not None:
        EVENT_AGE.labels(step).observe(max(0.0, time.time() - occurred_at.timestamp()))


REQUEST_LATENCY = Histogram(
    "hub_http_request_duration_seconds",
    "HTTP request latency by route and status.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
OUTBOX_BACKLOG = Gauge(
    "hub_outbox_backlog", "Outbox rows not yet settled on the bus.", registry=REGISTRY
)
OUTBOX_PUBLISHED = Counter(
    "hub_outbox_published_total", "Events the relay published to the bus.", registry=REGISTRY
)
BUS_LAG = Gauge(
    "hub_bus_lag",
    "Records not yet handled, per consumer group, topic and partition (this process's share).",
    ["group", "topic", "partition"],
    registry=REGISTRY,
)
BUS_BATCHES = Counter(
    "hub_bus_batches_total",
    "Batches a consumer group's handler was given (records over batches is its batch size).",
    ["group"],
    registry=REGISTRY,
)
BUS_RECORDS = Counter(
    "hub_bus_records_total",
    "Records a consumer group's handler was given, in batches.",
    ["group"],
    registry=REGISTRY,
)
BUS_SHED = Counter(
    "hub_bus_shed_total",
    "Records a group that may fall behind (the AI's) passed over on the in-process bus so as not"
    " to hold back the other groups.",
    ["group", "topic"],
    registry=REGISTRY,
)
REALTIME_SLOW_CUTOFFS = Counter(
    "hub_realtime_slow_cutoffs_total",
    "Agent sockets disconnected because they stopped reading (they replay on reconnect).",
    registry=REGISTRY,
)
CONNECTIONS_REFUSED = Counter(
    "hub_connections_refused_total",
    "Connections answered and closed at once: over the per-address or the total cap.",
    ["reason"],
    registry=REGISTRY,
)
BODY_TIMEOUTS = Counter(
    "hub_http_body_timeouts_total",
    "Requests whose body stalled (HUB_HTTP_BODY_TIMEOUT) or took too long "
    "(HUB_HTTP_BODY_DEADLINE), answered 408.",
    registry=REGISTRY,
)
OPEN_CONNECTIONS = Gauge(
    "hub_http_connections", "Open HTTP and socket connections of this process.", registry=REGISTRY
)
EVENT_LOOP_LAG = Gauge(
    "hub_event_loop_lag_seconds",
    "How late the event loop ran a timer in the last sampling interval (the largest delay).",
    registry=REGISTRY,
)


async def watch_event_loop_lag(interval: float = 0.25, window: int = 8) -> None:
    """Keep :data:`EVENT_LOOP_LAG` at the largest timer delay of the last ``window`` ticks: a
    blocked loop delays every socket and request of the process by that much."""
    loop = asyncio.get_running_loop()
    recent: deque[float] = deque(maxlen=window)
    while True:
        before = loop.time()
        await asyncio.sleep(interval)
        recent.append(max(0.0, loop.time() - before - interval))
        EVENT_LOOP_LAG.set(max(recent))
