"""How a group's handler is given a batch, the same for every backend: the whole batch once, then
record by record so one bad record is isolated; retries with backoff; transient errors (an outage)
retry without limit, others go to the group's dead-letter topic at the attempt limit."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Sequence

from hub.bus.contract import BusMessage, ConsumerOptions, Handler, OutRecord, dead_letter_topic
from hub.metrics import BUS_BATCHES, BUS_RECORDS

log = logging.getLogger("hub.bus")

#: publishes a dead-lettered record (the backend's own way)
DeadLetter = Callable[[OutRecord], Awaitable[None]]


async def deliver(
    handler: Handler,
    batch: Sequence[BusMessage],
    options: ConsumerOptions,
    group: str,
    dead_letter: DeadLetter,
) -> None:
    """Return once every record was handled or dead-lettered (never with a record dropped)."""
    BUS_BATCHES.labels(group).inc()
    BUS_RECORDS.labels(group).inc(len(batch))
    first = 1
    if len(batch) > 1:
        try:
            await handler(batch)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log_failure(group, batch, 1, exc)
            first = 2
    for message in batch:
        await _attempt(handler, message, first, options, group, dead_letter)


async def _attempt(
    handler: Handler,
    message: BusMessage,
    attempt: int,
    options: ConsumerOptions,
    group: str,
    dead_letter: DeadLetter,
) -> None:
    delay = options.backoff_initial
    while True:
        try:
            await handler(
                [message if attempt == 1 else dataclasses.replace(message, attempt=attempt)]
            )
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log_failure(group, [message], attempt, exc)
            if attempt >= options.max_attempts and not isinstance(exc, options.transient):
                await dead_letter(dead_letter_record(group, message, exc))
                return
        await asyncio.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, options.backoff_max)
        attempt += 1


def log_failure(group: str, batch: Sequence[BusMessage], attempt: int, exc: BaseException) -> None:
    log.warning(
        "bus handler failed",
        extra={
            "group": group,
            "topic": batch[0].topic,
            "partition": batch[0].partition,
            "offset": batch[0].offset,
            "records": len(batch),
            "attempt": attempt,
            "error": repr(exc),
            "event_ids": [m.headers.get("event_id") for m in batch[:20]],
            "correlation_ids": sorted({m.headers.get("correlation_id", "") for m in batch[:20]}),
        },
    )


def dead_letter_record(group: str, message: BusMessage, error: BaseException) -> OutRecord:
    headers = dict(message.headers)
    headers.update(
        {
            "dlq.group": group,
            "dlq.topic": message.topic,
            "dlq.partition": str(message.partition),
            "dlq.offset": str(message.offset),
            "dlq.error": repr(error)[:500],
        }
    )
    log.error(
        "bus record dead-lettered",
        extra={
            "group": group,
            "topic": message.topic,
            "offset": message.offset,
            "event_id": message.headers.get("event_id"),
            "correlation_id": message.headers.get("correlation_id"),
            "error": repr(error),
        },
    )
    return OutRecord(dead_letter_topic(message.topic, group), message.key, message.value, headers)
