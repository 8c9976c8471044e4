"""Delivery of the replay log to visitors' sockets.

One pusher per account with visitors connected: it reads the log after its head, only rows of the
web chat inboxes that have visitors here, and sends each visitor the items of its own
conversations (``realtime.widget.items``). A visitor reconnecting with ``last_seq`` first gets a
catch-up of its conversations up to the head, then joins the live set without yielding to the
event loop in between: nothing skipped or doubled, as for agents (``realtime.streams``).

A visitor's conversations are known by its contact: a conversation event for a tracked contact
(``conversation.created``, ``message.received``) adds its conversation, so a new conversation
after a resolved one reaches the visitor even if its first event is read before ingest returned.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson

from realtime.stream_set import StreamSet
from realtime.widget.items import visitor_item

log = logging.getLogger(__name__)

#: (recipient sids, event name, data as JSON)
Emit = Callable[[list[str], str, bytes], Awaitable[None]]
STEP = 2000  # log rows a pusher reads per round at most


class Visitor:
    def __init__(self, sid: str, inbox_id: str, contact_id: str | None, conversations: set[str]):
        self.sid = sid
        self.inbox_id = inbox_id
        self.contact_id = contact_id
        self.conversations = conversations


async def _rows(
    pool: asyncpg.Pool[Any], account_id: str, after: int, upto: int, inboxes: list[str]
) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT seq, conversation_id, inbox_id, type, event::text AS event FROM realtime_events
            WHERE account_id = $1 AND seq > $2 AND seq <= $3 AND inbox_id = ANY($4::text[])
            ORDER BY seq""",
        account_id,
        after,
        upto,
        inboxes,
    )


def _contact_of(raw: str) -> str | None:
    payload = orjson.loads(raw).get("payload") or {}
    contact = payload.get("contact_id")
    return contact if isinstance(contact, str) else None


class AccountVisitors:
    def __init__(self, account_id: str, pool: asyncpg.Pool[Any], emit: Emit, head: int) -> None:
        self.account_id = account_id
        self._pool = pool
        self._emit = emit
        self.head = head
        self.live: dict[str, Visitor] = {}
        self.catching_up: dict[str, asyncio.Task[None]] = {}
        self._waiting: dict[str, Visitor] = {}
        self._by_conversation: dict[str, set[str]] = defaultdict(set)
        self._by_contact: dict[str, set[str]] = defaultdict(set)
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @property
    def sockets(self) -> int:
        return len(self.live) + len(self.catching_up)

    def add(self, visitor: Visitor, cursor: int) -> None:
        self._index(visitor)
        if cursor >= self.head:
            self.live[visitor.sid] = visitor
        else:
            self._waiting[visitor.sid] = visitor
            self.catching_up[visitor.sid] = asyncio.create_task(
                self._catch_up(visitor, cursor), name=f"widget-catch-up:{visitor.sid}"
            )
        self.wake.set()

    def remove(self, sid: str) -> None:
        visitor = self.visitor(sid)
        if visitor is not None:
            self._unindex(visitor)
        self.live.pop(sid, None)
        self._waiting.pop(sid, None)
        task = self.catching_up.pop(sid, None)
        if task is not None:
            task.cancel()

    def visitor(self, sid: str) -> Visitor | None:
        return self.live.get(sid) or self._waiting.get(sid)

    async def _catch_up(self, visitor: Visitor, cursor: int) -> None:
        try:
            while cursor < self.head:
                upto = min(self.head, cursor + STEP)
                rows = await _rows(self._pool, self.account_id, cursor, upto, [visitor.inbox_id])
                await self._send(self._items(rows, visitor))
                cursor = upto
            if visitor.sid in self.catching_up:  # no await between this check and the join
                del self.catching_up[visitor.sid]
                self._waiting.pop(visitor.sid, None)
                self.live[visitor.sid] = visitor
                self.wake.set()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("widget catch-up failed", extra={"sid": visitor.sid})
            self.catching_up.pop(visitor.sid, None)

    def _index(self, visitor: Visitor) -> None:
        for conversation in visitor.conversations:
            self._by_conversation[conversation].add(visitor.sid)
        if visitor.contact_id:
            self._by_contact[visitor.contact_id].add(visitor.sid)

    def _unindex(self, visitor: Visitor) -> None:
        for conversation in visitor.conversations:
            sids = self._by_conversation.get(conversation)
            if sids is not None:
                sids.discard(visitor.sid)
                if not sids:
                    del self._by_conversation[conversation]
        if visitor.contact_id:
            sids = self._by_contact.get(visitor.contact_id)
            if sids is not None:
                sids.discard(visitor.sid)
                if not sids:
                    del self._by_contact[visitor.contact_id]

    def track(self, sid: str, contact_id: str, conversation_id: str) -> None:
        """The visitor's message went into this conversation (of this contact)."""
        visitor = self.visitor(sid)
        if visitor is None:
            return
        visitor.contact_id = contact_id
        visitor.conversations.add(conversation_id)
        self._index(visitor)

    def _readers(self, row: asyncpg.Record, only: Visitor | None) -> list[Visitor]:
        """Who sees the row: ``only`` (a catch-up), else the live visitors of its conversation.
        A conversation new to a tracked contact (made by another tab's first message, or read
        before ingest answered) is tracked from its first event."""
        conversation = row["conversation_id"]
        if only is not None:
            if conversation in only.conversations:
                return [only]
        else:
            sids = self._by_conversation.get(conversation)
            if sids:
                return [self.live[s] for s in sids if s in self.live]
        if row["type"] not in ("conversation.created", "message.received"):
            return []
        contact = _contact_of(row["event"])
        if not contact:
            return []
        candidates = (
            [only]
            if only is not None
            else [
                v for s in self._by_contact.get(contact, ()) if (v := self.live.get(s)) is not None
            ]
        )
        readers = [
            v for v in candidates if v.contact_id == contact and v.inbox_id == row["inbox_id"]
        ]
        for v in readers:
            self.track(v.sid, contact, conversation)
        return readers

    def _items(
        self, rows: list[asyncpg.Record], only: Visitor | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            readers = self._readers(row, only)
            if not readers:
                continue
            item = visitor_item(row["seq"], row["type"], row["event"])
            if item is None:
                continue
            for v in readers:
                out[v.sid].append(item)
        return out

    async def _send(self, items: dict[str, list[dict[str, Any]]]) -> None:
        for sid, shown in items.items():
            await self._emit([sid], "events", orjson.dumps(shown))

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            if not self.live:
                continue
            top = await self._pool.fetchval(
                "SELECT max(seq) FROM realtime_events WHERE account_id = $1", self.account_id
            )
            if top is None or top <= self.head:
                continue
            upto = min(top, self.head + STEP)
            inboxes = sorted({v.inbox_id for v in self.live.values()})
            rows = await _rows(self._pool, self.account_id, self.head, upto, inboxes)
            self.head = upto
            await self._send(self._items(rows))
            if upto < top:
                self.wake.set()


class VisitorStreams(StreamSet[AccountVisitors]):
    """All visitors' streams of this process."""

    def __init__(self, pool: asyncpg.Pool[Any], emit: Emit) -> None:
        super().__init__("widget")
        self._pool = pool
        self._emit = emit

    def add(self, account_id: str, visitor: Visitor, cursor: int, head: int) -> None:
        stream = self._streams.get(account_id)
        if stream is None:
            stream = self._streams[account_id] = AccountVisitors(
                account_id, self._pool, self._emit, head
            )
        stream.add(visitor, cursor)
        self._start(stream)

    def visitor(self, account_id: str, sid: str) -> Visitor | None:
        stream = self._streams.get(account_id)
        return None if stream is None else stream.visitor(sid)

    def track(self, account_id: str, sid: str, contact_id: str, conversation_id: str) -> None:
        stream = self._streams.get(account_id)
        if stream is not None:
            stream.track(sid, contact_id, conversation_id)
