"""The realtime consumer group: logs every conversation and contact event for replay, then hands
what each commit logged to the account streams that deliver them to agent sockets (in this
process directly, in the others through the cluster's notices)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import msgspec

from hub.actions.group_commit import GroupCommitter
from hub.bus import Bus, BusMessage, ConsumerOptions, Subscription
from hub.events.envelope import Head, occurred_at
from hub.events.types import CONTACTS, CONVERSATIONS, AgentPresenceChanged
from hub.metrics import observe_age
from hub.store.db import Conn
from realtime.context import inbox_list_context
from realtime.log import Logged, append, lock_keys

GROUP = "realtime"
#: events kept out of the replay log: sockets hear presence as the ``presence`` emit already
#: (``agent.presence_changed`` is for the journal and the agents report)
NOT_REPLAYED = frozenset({AgentPresenceChanged.TYPE})


class _InboxOnly(msgspec.Struct):
    inbox_id: str | None = None


class _HeadAndInbox(Head, frozen=True, kw_only=True):
    """The envelope plus the payload's inbox id: one decode per event for what the log needs."""

    payload: _InboxOnly = msgspec.field(default_factory=_InboxOnly)


_decoder = msgspec.json.Decoder(_HeadAndInbox)


Entry = tuple[Head, bytes, str | None]


async def _append_all(conn: Conn, batches: Sequence[list[Entry]]) -> list[Logged]:
    entries = [e for batch in batches for e in batch if e[0].type not in NOT_REPLAYED]
    heads = [e[0] for e in entries]
    # one statement takes the numbering locks and reads the context (the insert's snapshot is
    # then taken under the locks, as the numbering needs)
    context = await inbox_list_context(
        conn, (h.conversation_id for h in heads), lock_keys([h.account_id for h in heads])
    )
    logged = await append(
        conn,
        heads,
        [e[1] for e in entries],
        [e[2] for e in entries],
        [context.get(h.conversation_id or "") for h in heads],
        locked=True,
    )
    return [logged] * len(batches)


class RealtimeConsumer:
    """Batches from all partitions share one transaction (group commit): the log is written by
    one transaction at a time per process anyway, since numbering takes the account's lock.

    ``on_committed`` hears, once per commit and in commit order, the events just logged (the
    cluster's :meth:`~realtime.cluster.Cluster.committed`): the socket streams send them without
    reading them back (a stream that finds a gap reads the log, which stays the source of every
    replay)."""

    def __init__(self, pool: asyncpg.Pool[Any], on_committed: Callable[[Logged], None]) -> None:
        self._on_committed = on_committed
        self._writer: GroupCommitter[list[Entry], Logged] = GroupCommitter(
            "realtime-log",
            pool,
            _append_all,
            max_batch=64,
            concurrency=1,
            on_commit=self._committed,
        )

    def _committed(self, batches: Sequence[list[Entry]], results: Sequence[Logged]) -> None:
        # the batches of one commit share one result, except after isolating a failing batch
        merged: Logged = {}
        for logged in {id(r): r for r in results}.values():
            for account_id, events in logged.items():
                merged.setdefault(account_id, []).extend(events)
        if merged:
            for events in merged.values():
                events.sort(key=lambda e: e.seq)
                observe_age("logged", occurred_at(events[0].event))
            self._on_committed(merged)

    def start(self) -> None:
        self._writer.start()

    async def stop(self) -> None:
        await self._writer.stop()

    async def subscribe(self, bus: Bus, options: ConsumerOptions) -> list[Subscription]:
        return [
            await bus.subscribe(topic, GROUP, self.handle, options)
            for topic in (CONVERSATIONS, CONTACTS)
        ]

    async def handle(self, batch: Sequence[BusMessage]) -> None:
        entries: list[Entry] = []
        for m in batch:
            head = _decoder.decode(m.value)
            entries.append((head, m.value, head.payload.inbox_id))
        await self._writer.submit(entries)  # the commit hands what it logged to on_committed
