"""Parts that are one background task, and the durable timer built on them.

:class:`BackgroundPart` starts its ``run`` with the hub and cancels and awaits it at stop, so no
task outlives the hub; an error ``run`` lets out is logged and ``run`` starts again.
:class:`DueTimer` is the pattern for a timer that must fire once, on time, across restarts and with
several workers: the due time lives in the row it acts on, ``fire`` takes due rows ``FOR UPDATE SKIP
LOCKED`` in the transaction that acts on them, and the loop sleeps until the next due row, at most
the poll interval (so a due time written by another process is seen within it).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hub.contracts.part import WORKERS, Layer
from hub.store.db import Conn
from hub.supervise import keep_running

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger(__name__)

#: seconds before a failed background part starts again, doubling to the maximum
RESTART_PAUSE = 1.0
RESTART_PAUSE_MAX = 60.0


class BackgroundPart(abc.ABC):
    name: str
    layer: Layer = "source"
    roles: frozenset[str] = WORKERS

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self.restarts = 0  # times ``run`` ended with an error and was started again

    async def start(self, hub: Hub) -> None:
        self._task = asyncio.create_task(self._supervised(hub), name=self.name)

    async def _supervised(self, hub: Hub) -> None:
        def failed() -> None:
            self.restarts += 1

        await keep_running(
            self.name,
            lambda: self.run(hub),
            pause=RESTART_PAUSE,
            max_pause=RESTART_PAUSE_MAX,
            failed=failed,
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def health(self) -> Mapping[str, Any]:
        return {}

    @abc.abstractmethod
    async def run(self, hub: Hub) -> None:
        """The part's work, until it is cancelled."""


class DueTimer(BackgroundPart):
    #: rows one ``fire`` takes at most; a full batch means more may be due at once
    batch: int

    def __init__(self) -> None:
        super().__init__()
        self.fired = 0

    @abc.abstractmethod
    def poll_seconds(self, hub: Hub) -> float:
        """The longest sleep between looks."""

    @abc.abstractmethod
    async def fire(self, conn: Conn) -> int:
        """Act on due rows (in the caller's transaction); how many."""

    @abc.abstractmethod
    async def next_due(self, conn: Conn) -> datetime | None:
        """When the next row falls due."""

    async def run(self, hub: Hub) -> None:
        from hub.app import TRANSIENT

        poll = self.poll_seconds(hub)
        while True:
            due = None
            try:
                while True:
                    async with hub.pool.acquire() as conn, conn.transaction():
                        fired = await self.fire(conn)
                    self.fired += fired
                    if fired < self.batch:
                        break
                async with hub.pool.acquire() as conn:
                    due = await self.next_due(conn)
            except TRANSIENT as exc:
                log.warning(f"{self.name}: database unavailable", extra={"error": repr(exc)})
            wait = poll
            if due is not None:
                wait = min(poll, max(0.0, (due - datetime.now(UTC)).total_seconds()))
            await asyncio.sleep(wait)
