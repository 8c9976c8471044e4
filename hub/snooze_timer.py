"""The timer that wakes snoozed conversations when their time comes, as a part of the hub.

Durable by construction: the due time is the conversation's own ``snoozed_until``, so nothing is
lost across restarts (a hub that was down wakes what fell due meanwhile at its next start), and
several workers share the work without doubling it (``wake_snoozed`` locks with SKIP LOCKED). It
sleeps until the next due time, at most ``HUB_SNOOZE_POLL_MS``, so a snooze set meanwhile by any
process is seen within that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hub.actions.conversations import WAKE_BATCH, next_wake, wake_snoozed
from hub.contracts.part import WORKERS, Layer

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger(__name__)


class SnoozeTimer:
    name = "snooze-timer"
    layer: Layer = "source"
    roles = WORKERS

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self.woken = 0

    async def start(self, hub: Hub) -> None:
        self._task = asyncio.create_task(self._run(hub), name="snooze-timer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def health(self) -> Mapping[str, Any]:
        return {}

    async def _run(self, hub: Hub) -> None:
        from hub.app import TRANSIENT

        poll = hub.config.snooze_poll_ms / 1000
        while True:
            try:
                while True:
                    async with hub.pool.acquire() as conn, conn.transaction():
                        woken = await wake_snoozed(conn)
                    self.woken += woken
                    if woken < WAKE_BATCH:
                        break
                async with hub.pool.acquire() as conn:
                    due = await next_wake(conn)
            except TRANSIENT as exc:
                log.warning("snooze timer: database unavailable", extra={"error": repr(exc)})
                due = None
            wait = poll
            if due is not None:
                wait = min(poll, max(0.0, (due - datetime.now(UTC)).total_seconds()))
            await asyncio.sleep(wait)
