"""Per-account delivery of the replay log to agent sockets.

Each account with connected sockets has one live pusher: it reads the log after the stream's
``head`` (the last sequence it sent) and sends every live socket the same ``events`` message,
encoded once. A socket that reconnects behind the head (``last_seq``) first gets a catch-up task of
its own that sends the gap, in order and only up to the head, and joins the live set the moment it
reaches the head: a long replay never holds back the other sockets, and nothing is skipped or
doubled at the hand-over (the check and the join happen without yielding to the event loop).

The pusher is handed the events each commit of the log added (:meth:`Streams.feed`: by the log's
writer in this process, or in the notices of the process that writes it) and sends them without
reading them back when they follow on from its head; a gap in them, or a wake-up saying the log
grew by events not handed over (:meth:`Streams.notify`: a row too big for a notice, a lost
notice), makes it read the log instead, so nothing is skipped or doubled.

Sockets limited to some inboxes get the events of those inboxes and the events of no inbox. When
the account sets ``contacts_by_inbox``, contact events are for them only if the contact has a
conversation in one of their inboxes (looked up once per batch, only for batches holding contact
events and only while such sockets are connected).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import orjson

from hub.events.envelope import occurred_at
from hub.metrics import observe_age
from realtime.log import Logged, LoggedEvent, read_after
from realtime.stream_set import StreamSet

log = logging.getLogger(__name__)

#: (recipient sids, event name, data as JSON): one encoding for all recipients
Emit = Callable[[list[str], str, bytes], Awaitable[None]]


def _items(events: Sequence[LoggedEvent]) -> bytes:
    """The ``events`` batch as JSON, splicing each event's stored JSON in without re-encoding."""
    return (
        b"["
        + b",".join(
            b'{"seq":%d,"type":%s,"event":%s,"context":%s}'
            % (e.seq, orjson.dumps(e.type), e.event.encode(), (e.context or "null").encode())
            for e in events
        )
        + b"]"
    )


#: the inboxes a socket may see (``None``: all of its account), from its Principal
Scope = frozenset[str] | None


#: contact id -> the inboxes of its conversations, for contact events of an account that limits
#: contacts to inboxes; ``None``: contact events are for every socket of the account
ContactInboxes = dict[str, frozenset[str]] | None


def _contact_id(event: LoggedEvent) -> str:
    payload = orjson.loads(event.event).get("payload") or {}
    return str(payload.get("contact_id") or "")


async def contact_inboxes(
    pool: asyncpg.Pool[Any], account_id: str, events: Sequence[LoggedEvent]
) -> ContactInboxes:
    contacts = {_contact_id(e) for e in events if e.type.startswith("contact.")}
    if not contacts:
        return None
    limited = await pool.fetchval(
        "SELECT contacts_by_inbox FROM accounts WHERE id = $1", account_id
    )
    if not limited:
        return None
    rows = await pool.fetch(
        """SELECT contact_id, array_agg(DISTINCT inbox_id) AS inboxes FROM conversations
            WHERE account_id = $1 AND contact_id = ANY($2::text[]) GROUP BY contact_id""",
        account_id,
        sorted(contacts),
    )
    found = {r["contact_id"]: frozenset(r["inboxes"]) for r in rows}
    return {c: found.get(c, frozenset()) for c in contacts}


def _visible(
    events: Sequence[LoggedEvent], scope: Scope, contacts: ContactInboxes = None
) -> Sequence[LoggedEvent]:
    if scope is None:
        return events

    def sees(e: LoggedEvent) -> bool:
        if e.inbox_id is not None:
            return e.inbox_id in scope
        if contacts is not None and e.type.startswith("contact."):
            return not contacts.get(_contact_id(e), frozenset()).isdisjoint(scope)
        return True

    return [e for e in events if sees(e)]


class AccountStream:
    def __init__(
        self, account_id: str, pool: asyncpg.Pool[Any], emit: Emit, batch: int, head: int
    ) -> None:
        self.account_id = account_id
        self._pool = pool
        self._emit = emit
        self._batch = batch
        self.head = head
        self.live: dict[str, Scope] = {}
        self.catching_up: dict[str, asyncio.Task[None]] = {}
        self._scopes: dict[str, Scope] = {}
        self._resync: dict[str, int] = {}  # told before anything else is sent to them
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        #: events handed over (by the log's writer, or in another process's notice), not sent yet
        self.fed: list[LoggedEvent] = []
        #: the log grew by events not handed over (or maybe: a notice may have been lost), so
        #: the next pass reads the log
        self.unheard = False

    @property
    def sockets(self) -> int:
        return len(self.live) + len(self.catching_up)

    def add(self, sid: str, cursor: int, resync_head: int | None, scope: Scope) -> None:
        self._scopes[sid] = scope
        if cursor >= self.head:
            self.live[sid] = scope
        else:
            self.catching_up[sid] = asyncio.create_task(
                self._catch_up(sid, cursor), name=f"realtime-catch-up:{sid}"
            )
        if resync_head is not None:
            self._resync[sid] = resync_head
        self.wake.set()

    def remove(self, sid: str) -> None:
        self.live.pop(sid, None)
        self._scopes.pop(sid, None)
        self._resync.pop(sid, None)
        task = self.catching_up.pop(sid, None)
        if task is not None:
            task.cancel()

    async def _catch_up(self, sid: str, cursor: int) -> None:
        try:
            while cursor < self.head:
                events = await read_after(self._pool, self.account_id, cursor, self._batch)
                gap = [e for e in events if e.seq <= self.head]
                if not gap:
                    break
                scope = self._scopes.get(sid)
                contacts = (
                    None
                    if scope is None
                    else await contact_inboxes(self._pool, self.account_id, gap)
                )
                visible = _visible(gap, scope, contacts)
                if visible:
                    await self._emit([sid], "events", _items(visible))
                cursor = gap[-1].seq
            # no await between this check and the join: the live pusher starts after self.head
            if sid in self.catching_up:
                del self.catching_up[sid]
                self.live[sid] = self._scopes.get(sid)
                self.wake.set()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("realtime catch-up failed", extra={"sid": sid})
            self.catching_up.pop(sid, None)

    def feed(self, events: Sequence[LoggedEvent]) -> None:
        """Events just logged (in sequence order): sent without reading them back, when they
        follow on from what was sent; otherwise the log is read, as without them."""
        if len(self.fed) + len(events) > self._batch:
            self.fed.clear()  # nobody took them: reading the log is as good
        else:
            self.fed.extend(events)
        self.wake.set()

    def _take_fed(self) -> list[LoggedEvent] | None:
        """The next events after ``head`` from what was handed over, or ``None`` if they do not
        follow on without a gap (then the log is read)."""
        fed = [e for e in self.fed if e.seq > self.head]
        self.fed.clear()
        if not fed or fed[0].seq != self.head + 1:
            return None
        if fed[-1].seq - fed[0].seq != len(fed) - 1:  # (in order, no repeats: one commit's own)
            return None
        return fed

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            for sid, head in list(self._resync.items()):
                del self._resync[sid]
                await self._emit([sid], "resync", b'{"head":%d}' % head)
            if not self.live:
                continue
            # cleared before the read: a wake-up during it asks for another one
            unheard, self.unheard = self.unheard, False
            events = None if unheard else self._take_fed()
            if events is None:
                events = await read_after(self._pool, self.account_id, self.head, self._batch)
            if not events:
                continue
            self.head = events[-1].seq
            # one encoding per group of sockets that see the same inboxes (usually one group)
            groups: dict[Scope, list[str]] = defaultdict(list)
            for sid, scope in self.live.items():
                groups[scope].append(sid)
            contacts = (
                await contact_inboxes(self._pool, self.account_id, events)
                if any(scope is not None for scope in groups)
                else None
            )
            for scope, sids in groups.items():
                visible = _visible(events, scope, contacts)
                if visible:
                    await self._emit(sids, "events", _items(visible))
            observe_age("sent", occurred_at(events[0].event))
            if len(events) == self._batch:
                self.wake.set()


class Streams(StreamSet[AccountStream]):
    """All account streams of this process. :meth:`feed` hands them the events just logged;
    :meth:`~realtime.stream_set.StreamSet.notify` says the log grew by events not handed over,
    which the woken streams read from the log."""

    def __init__(self, pool: asyncpg.Pool[Any], emit: Emit, batch: int = 500) -> None:
        super().__init__("realtime")
        self._pool = pool
        self._emit = emit
        self._batch = batch

    def add(
        self, account_id: str, sid: str, cursor: int, head: int, resync: bool, scope: Scope = None
    ) -> None:
        """``head`` is the log's newest sequence; the stream starts live from there."""
        stream = self._streams.get(account_id)
        if stream is None:
            stream = self._streams[account_id] = AccountStream(
                account_id, self._pool, self._emit, self._batch, head
            )
        stream.add(sid, cursor, head if resync else None, scope)
        self._start(stream)

    def _wake(self, stream: AccountStream) -> None:
        stream.unheard = True
        stream.wake.set()

    def feed(self, logged: Logged) -> None:
        """What one commit of the replay log added: from the writer in this process, or from
        another process's notice (realtime/cluster/notices.py)."""
        for account_id, events in logged.items():
            stream = self._streams.get(account_id)
            if stream is not None:
                stream.feed(events)
