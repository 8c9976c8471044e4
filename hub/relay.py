"""The outbox relay: publishes committed outbox rows to the bus, in ``seq`` order.

One relay is active at a time (a session advisory lock; other processes stand by). It wakes on
``NOTIFY hub_outbox`` and polls as a fallback. A row is deleted only once the bus says it is
settled: at once for a durable broker, and for the in-process bus only after every consumer group
handled it, so a crash at any point re-publishes what might not have been handled (consumers are
idempotent on event id) and loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

import asyncpg

from hub.bus import Bus, OutRecord
from hub.events.envelope import occurred_at
from hub.metrics import OUTBOX_BACKLOG, OUTBOX_PUBLISHED, observe_age
from hub.store.db import DB_UNAVAILABLE
from hub.store.outbox import NOTIFY_CHANNEL
from hub.supervise import keep_running

log = logging.getLogger(__name__)

RELAY_LOCK = 0x48554252  # "HUBR"


class OutboxRelay:
    def __init__(
        self,
        dsn: str,
        bus: Bus,
        *,
        poll_interval: float = 0.5,
        batch_size: int = 1000,
        max_unsettled: int = 20_000,
    ) -> None:
        self._dsn = dsn
        self._bus = bus
        self._poll = poll_interval
        self._batch = batch_size
        self._max_unsettled = max_unsettled
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.active = False
        self.published = 0
        self.reads = 0  # reads of the outbox table (tests)
        self._iteration = 0  # loop passes, to know that an idle pass began after a request
        self._idle_pass = -1  # the last pass that found nothing to publish and nothing unsettled

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="outbox-relay")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=5)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task

    async def drain(self, within: float) -> bool:
        """Publish what is in the outbox and wait until the bus settled it (a clean shutdown
        then leaves nothing to publish again on the next start). False if time ran out."""
        requested = self._iteration
        self._wake.set()
        deadline = asyncio.get_running_loop().time() + within
        while self._idle_pass <= requested + 1:
            if not self.active or asyncio.get_running_loop().time() > deadline:
                return False
            self._wake.set()
            await asyncio.sleep(0.01)
        return True

    async def _supervise(self) -> None:
        """Keep a relay running through database restarts and whatever else goes wrong: a dead
        relay stops every consumer at once."""
        pause = min(self._poll * 2, 2.0)
        await keep_running(
            "outbox relay",
            self._run,
            outage=(*DB_UNAVAILABLE, asyncpg.PostgresError),
            pause=pause,
            max_pause=pause,
        )

    async def _run(self) -> None:
        if self._stopping:
            return
        conn: asyncpg.Connection[Any] = await asyncpg.connect(self._dsn)
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK):
                if self._stopping:
                    return
                await asyncio.sleep(self._poll)  # another process relays; stand by
            self.active = True
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
            await self._loop(conn)
        finally:
            self.active = False
            conn.terminate()  # immediate; also ends the session lock so a standby takes over

    async def _loop(self, conn: asyncpg.Connection[Any]) -> None:
        cursor = 0  # everything still in the outbox is published again after a restart
        # lowest seq that may still be in the table: deletes scan only from here, not over the
        # index entries of rows already deleted but not yet vacuumed
        deleted_through = await conn.fetchval("SELECT coalesce(min(seq) - 1, 0) FROM outbox")
        pending: deque[tuple[int, int]] = deque()  # (bus token, last outbox seq of that publish)
        unsettled = 0
        clock = asyncio.get_running_loop().time
        looked_at = -self._poll  # when the outbox was last read
        more = True  # the last read was a full batch (or none was made yet)
        while not self._stopping:
            self._iteration += 1
            # the outbox is read when something was committed (a wake-up: NOTIFY, or ingest in
            # this process), when the last read was full, and every poll interval in case a
            # NOTIFY was missed; the passes between, every 20 ms while the bus has records
            # unsettled, only look at the bus (they read the outbox too, once, and on a quiet
            # hub that was most of its statements)
            look = self._wake.is_set() or more or clock() - looked_at >= self._poll
            self._wake.clear()
            rows = []
            if look and unsettled >= self._max_unsettled:
                more = True  # read as soon as the bus settled enough
            elif look:
                looked_at = clock()
                self.reads += 1
                rows = await conn.fetch(
                    """SELECT seq, event_id, type, correlation_id, topic, key, payload
                         FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2""",
                    cursor,
                    self._batch,
                )
                more = len(rows) == self._batch
            if rows:
                token = await self._bus.publish_many(
                    [
                        OutRecord(
                            r["topic"],
                            r["key"],
                            r["payload"],
                            {
                                "event_id": r["event_id"],
                                "type": r["type"],
                                "correlation_id": r["correlation_id"],
                                "seq": str(r["seq"]),
                            },
                        )
                        for r in rows
                    ]
                )
                observe_age("published", occurred_at(rows[0]["payload"]))
                cursor = rows[-1]["seq"]
                pending.append((token, cursor))
                unsettled += len(rows)
                self.published += len(rows)
                OUTBOX_PUBLISHED.inc(len(rows))
            settled = self._bus.settled()
            done_through = None
            while pending and pending[0][0] <= settled:
                done_through = pending.popleft()[1]
            if done_through is not None:
                deleted = await conn.execute(
                    "DELETE FROM outbox WHERE seq > $1 AND seq <= $2", deleted_through, done_through
                )
                deleted_through = done_through
                unsettled = max(0, unsettled - int(deleted.split()[-1]))
            OUTBOX_BACKLOG.set(unsettled)
            if look and not rows and not pending:
                self._idle_pass = self._iteration
            if len(rows) == self._batch:
                continue
            # wait for new rows, or for consumers to settle what is pending
            timeout = 0.02 if pending else self._poll
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
