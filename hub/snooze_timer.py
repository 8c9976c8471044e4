"""The timer that wakes snoozed conversations when their time comes, as a part of the workers.

Durable by construction (:class:`hub.timers.DueTimer`): the due time is the conversation's own
``snoozed_until``, so a hub that was down wakes what fell due meanwhile at its next start, and
several workers share the work without doubling it (``wake_snoozed`` locks with SKIP LOCKED). A
snooze set meanwhile by any process is seen within ``HUB_SNOOZE_POLL_MS``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from hub.actions.conversations import WAKE_BATCH, next_wake, wake_snoozed
from hub.store.db import Conn
from hub.timers import DueTimer

if TYPE_CHECKING:
    from hub.app import Hub


class SnoozeTimer(DueTimer):
    name = "snooze-timer"
    batch = WAKE_BATCH

    def poll_seconds(self, hub: Hub) -> float:
        return hub.config.snooze_poll_ms / 1000

    async def fire(self, conn: Conn) -> int:
        return await wake_snoozed(conn)

    async def next_due(self, conn: Conn) -> datetime | None:
        return await next_wake(conn)
