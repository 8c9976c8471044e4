"""Forget old claims: ``processed_events`` rows are kept only as long as their event can still be
handed to the consumer again.

A claim guards against a redelivery: the in-process bus redelivers what was not acknowledged
within seconds, Kafka what a group had not committed, or everything it still keeps when a
group's offsets are reset (Kafka keeps records 7 days by default). After ``HUB_CLAIM_DAYS``
(longer than that) a claim guards nothing, and without pruning the table would grow by a row per
applied event for good. Event ids are time-ordered (``hub/ids.py``), so "older than" is a range of
the primary key per consumer, deleted in short statements of ``chunk`` rows; an id that is not
one of ours (not 26 characters) is never taken for an old one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import asyncpg

from hub.contracts.part import WORKERS
from hub.ids import first_id_at
from hub.store.db import Conn
from hub.timers import BackgroundPart

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger(__name__)

#: seconds between prunings
PRUNE_EVERY_S = 3600.0
#: rows deleted per statement: short transactions, and WAL in small steps
PRUNE_CHUNK = 5000

#: every consumer with claims, from the primary key (a skip scan, not a scan of the table)
_CONSUMERS = """WITH RECURSIVE c(consumer) AS (
                    SELECT min(consumer) FROM processed_events
                    UNION ALL
                    SELECT (SELECT min(consumer) FROM processed_events p
                             WHERE p.consumer > c.consumer)
                      FROM c WHERE c.consumer IS NOT NULL)
                SELECT consumer FROM c WHERE consumer IS NOT NULL"""

_DELETE = """DELETE FROM processed_events
              WHERE consumer = $1
                AND event_id IN (SELECT event_id FROM processed_events
                                  WHERE consumer = $1 AND event_id < $2
                                    AND length(event_id) = 26
                                  ORDER BY event_id LIMIT $3)"""


async def prune_claims(
    db: asyncpg.Pool[Any] | Conn, before_ms: int, chunk: int = PRUNE_CHUNK
) -> int:
    """Delete the claims of events made before Unix time ``before_ms``; how many (each
    statement its own transaction unless ``db`` is in one)."""
    below = first_id_at(before_ms)
    removed = 0
    for row in await db.fetch(_CONSUMERS):
        while True:
            status: str = await db.execute(_DELETE, row["consumer"], below, chunk)
            n = int(status.split()[-1])
            removed += n
            if n < chunk:
                break
    return removed


class ClaimPruner(BackgroundPart):
    """Prunes the claims once an hour (workers: where the consumers run)."""

    name = "claim-pruning"
    roles = WORKERS

    async def run(self, hub: Hub) -> None:
        from hub.app import TRANSIENT

        days = hub.config.claim_days
        if days <= 0:  # kept for good
            return
        while True:
            try:
                before = time.time_ns() // 1_000_000 - days * 86_400_000
                removed = await prune_claims(hub.pool, before)
                if removed:
                    log.info("old claims pruned", extra={"removed": removed, "days": days})
            except TRANSIENT as exc:
                log.warning("claim pruning: database unavailable", extra={"error": repr(exc)})
            except asyncpg.DeadlockDetectedError:  # two workers pruning at once: the other goes on
                log.info("claim pruning: left to another worker")
            await asyncio.sleep(PRUNE_EVERY_S)
