"""Per-account delivery of the replay log to agent sockets.

Each account with connected sockets has one pusher task. Every socket has a cursor: the last
sequence number it was sent. The pusher reads the log after the lowest cursor and sends each socket
the events past its own cursor, in sequence order. A socket that reconnects with ``last_seq`` simply
starts with that cursor, so replay and live delivery are the same path and cannot interleave out of
order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson

from realtime.log import read_after

log = logging.getLogger(__name__)

Emit = Callable[[str, str, Any], Awaitable[None]]  # (sid, event name, data)


class AccountStream:
    def __init__(self, account_id: str, pool: asyncpg.Pool[Any], emit: Emit, batch: int) -> None:
        self.account_id = account_id
        self._pool = pool
        self._emit = emit
        self._batch = batch
        self.cursors: dict[str, int] = {}
        self._resync: dict[str, int] = {}
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def add(self, sid: str, cursor: int, resync: bool) -> None:
        self.cursors[sid] = cursor
        if resync:
            self._resync[sid] = cursor
        self.wake.set()

    def remove(self, sid: str) -> None:
        self.cursors.pop(sid, None)
        self._resync.pop(sid, None)
        self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            for sid, head in list(self._resync.items()):
                del self._resync[sid]
                await self._emit(sid, "resync", {"head": head})
            if not self.cursors:
                continue
            low = min(self.cursors.values())
            events = await read_after(self._pool, self.account_id, low, self._batch)
            if not events:
                continue
            items = [{"seq": e.seq, "type": e.type, "event": orjson.loads(e.event)} for e in events]
            # one message per socket and pass: the events past that socket's cursor, in order
            for sid, cursor in list(self.cursors.items()):
                todo = (
                    items
                    if cursor < events[0].seq
                    else [item for item in items if item["seq"] > cursor]
                )
                if todo and sid in self.cursors:
                    await self._emit(sid, "events", todo)
                    self.cursors[sid] = todo[-1]["seq"]
            if len(events) == self._batch:
                self.wake.set()


class Streams:
    """All account streams of this process."""

    def __init__(self, pool: asyncpg.Pool[Any], emit: Emit, batch: int = 500) -> None:
        self._pool = pool
        self._emit = emit
        self._batch = batch
        self._streams: dict[str, AccountStream] = {}

    def add(self, account_id: str, sid: str, cursor: int, resync: bool) -> None:
        stream = self._streams.get(account_id)
        if stream is None:
            stream = self._streams[account_id] = AccountStream(
                account_id, self._pool, self._emit, self._batch
            )
        stream.add(sid, cursor, resync)
        if stream.task is None or stream.task.done():
            stream.task = asyncio.create_task(self._run(stream), name=f"realtime:{account_id}")

    def remove(self, account_id: str, sid: str) -> None:
        stream = self._streams.get(account_id)
        if stream is None:
            return
        stream.remove(sid)
        if not stream.cursors:  # the account's last socket went: stop its pusher
            del self._streams[account_id]
            if stream.task is not None:
                stream.task.cancel()

    def notify(self, account_ids: set[str]) -> None:
        for account_id in account_ids:
            stream = self._streams.get(account_id)
            if stream is not None:
                stream.wake.set()

    async def _run(self, stream: AccountStream) -> None:
        while True:
            try:
                await stream.run()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database hiccuped: keep the cursors, try again shortly
                log.exception("realtime stream failed", extra={"account_id": stream.account_id})
                await asyncio.sleep(0.5)
                stream.wake.set()

    async def close(self) -> None:
        for stream in list(self._streams.values()):
            stream.cursors.clear()
            stream.wake.set()
            if stream.task is not None:
                stream.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stream.task
        self._streams.clear()
