"""The in-process bus backend.

A :class:`MemoryBroker` holds the topics (partitioned logs) and each group's progress, like a
broker would; :class:`MemoryBus` is a client of it. One runner task per (group, partition) walks
the log and hands each batch to one of the group's members, so a partition is never processed by
two members at once and order per key holds through membership changes; a ``single_lane``
group has one runner over all partitions instead, taking the oldest records first. Records are
dropped from memory once every group has handled them; how far that has come is reported through
:meth:`MemoryBus.settled`, which the outbox relay uses to know which outbox rows it may delete.
A group with ``max_lag`` (the AI's) passes over its oldest records when it falls that far behind,
so one slow, skippable consumer does not hold every other group to its pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import zlib
from collections.abc import Sequence
from operator import attrgetter
from typing import ClassVar

from hub.bus.contract import (
    Bus,
    BusMessage,
    ConsumerOptions,
    Handler,
    OutRecord,
    Subscription,
)
from hub.bus.delivery import deliver
from hub.metrics import BUS_SHED

log = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class _Record:
    token: int  # orders records across partitions
    message: BusMessage  # built once, handed to every group (it is immutable)


_token = attrgetter("token")

#: handled records are cut from a partition's list in blocks of at least this many
_COMPACT = 1024


class _Partition:
    """A list with a moving start, so a batch is a slice (a deque walks to an index)."""

    def __init__(self) -> None:
        self.base = 0  # offset of records[0]
        self.start = 0  # offset of the oldest record kept (every group is past the ones before)
        self.records: list[_Record] = []
        self.wakeup = asyncio.Event()

    @property
    def end(self) -> int:
        return self.base + len(self.records)

    def between(self, start: int, stop: int) -> list[_Record]:
        return self.records[start - self.base : stop - self.base]

    def drop_before(self, floor: int) -> None:
        if floor <= self.start:
            return
        self.start = min(floor, self.end)
        dead = self.start - self.base
        if dead >= _COMPACT and dead * 2 >= len(self.records):
            del self.records[:dead]
            self.base = self.start


@dataclasses.dataclass(eq=False)
class _Member:
    handler: Handler
    inflight: int = 0
    idle: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


class _Group:
    def __init__(self, name: str, topic: _Topic, options: ConsumerOptions) -> None:
        self.name = name
        self.topic = topic
        self.options = options
        self.committed = [topic.partitions[p].start for p in range(len(topic.partitions))]
        self.taken = list(self.committed)  # past the batch in flight (for counting what is shed)
        self.members: list[_Member] = []
        self.has_members = asyncio.Event()
        self.runners: list[asyncio.Task[None]] = []
        self.turn = 0  # the member the single lane hands its next batch to
        self.warned = 0.0  # when shedding was last logged


class _Topic:
    def __init__(self, name: str, partitions: int) -> None:
        self.name = name
        self.partitions = [_Partition() for _ in range(partitions)]
        self.groups: dict[str, _Group] = {}
        self.shedding: list[_Group] = []  # the groups with a ``max_lag``
        self.wakeup = asyncio.Event()  # any partition got a record (for single-lane groups)


class MemoryBroker:
    """Shared state of the in-process bus; several clients may use one broker."""

    def __init__(self, partitions: int = 8) -> None:
        self.partitions = partitions
        self.topics: dict[str, _Topic] = {}
        self.last_token = 0
        self._closed = False

    def topic(self, name: str) -> _Topic:
        topic = self.topics.get(name)
        if topic is None:
            topic = self.topics[name] = _Topic(name, self.partitions)
        return topic

    def append(self, record: OutRecord) -> int:
        topic = self.topic(record.topic)
        index = zlib.crc32(record.key.encode()) % len(topic.partitions)
        partition = topic.partitions[index]
        self.last_token += 1
        message = BusMessage(
            topic.name, record.key, record.value, index, partition.end, dict(record.headers)
        )
        partition.records.append(_Record(self.last_token, message))
        if not topic.groups or (topic.shedding and self._shed(topic, index)):
            self._trim(topic, index)
        partition.wakeup.set()
        topic.wakeup.set()
        return self.last_token

    def _shed(self, topic: _Topic, index: int) -> int:
        """Move each group with a ``max_lag`` that fell further behind up to that lag."""
        end = topic.partitions[index].end
        passed = 0
        for group in topic.shedding:
            assert group.options.max_lag is not None
            old = group.committed[index]
            new = end - group.options.max_lag
            if new > old:
                group.committed[index] = new
                passed += new - old
                skipped = new - max(old, group.taken[index])  # the batch in flight is handled
                if skipped > 0:
                    BUS_SHED.labels(group.name, topic.name).inc(skipped)
                now = time.monotonic()
                if now - group.warned > 10:
                    group.warned = now
                    log.warning(
                        "consumer group %s fell %d records behind on %s: passing over the oldest",
                        group.name,
                        group.options.max_lag,
                        topic.name,
                        extra={"group": group.name, "topic": topic.name},
                    )
        return passed

    def _trim(self, topic: _Topic, index: int) -> None:
        partition = topic.partitions[index]
        partition.drop_before(
            min((g.committed[index] for g in topic.groups.values()), default=partition.end)
        )

    async def _dead_letter(self, record: OutRecord) -> None:
        self.append(record)

    def settled(self) -> int:
        lowest = self.last_token
        for topic in self.topics.values():
            for partition in topic.partitions:
                if partition.start < partition.end:
                    first = partition.records[partition.start - partition.base].token - 1
                    if first < lowest:
                        lowest = first
        return lowest

    def join(
        self, topic_name: str, group_name: str, member: _Member, options: ConsumerOptions
    ) -> _Group:
        topic = self.topic(topic_name)
        group = topic.groups.get(group_name)
        if group is None:
            group = topic.groups[group_name] = _Group(group_name, topic, options)
            if options.max_lag is not None:
                topic.shedding.append(group)
            if options.single_lane:
                lane = self._run_lane(group)
                group.runners = [asyncio.create_task(lane, name=f"bus:{group_name}:{topic_name}")]
            else:
                group.runners = [
                    asyncio.create_task(
                        self._run(group, p), name=f"bus:{group_name}:{topic_name}:{p}"
                    )
                    for p in range(len(topic.partitions))
                ]
        group.members.append(member)
        group.has_members.set()
        return group

    async def _run(self, group: _Group, index: int) -> None:
        partition = group.topic.partitions[index]
        options = group.options
        while True:
            if not group.members:
                group.has_members.clear()
                await group.has_members.wait()
                continue
            start = group.committed[index]
            if start >= partition.end:
                partition.wakeup.clear()
                await partition.wakeup.wait()
                continue
            if options.linger and partition.end - start < options.max_batch:
                await asyncio.sleep(options.linger)
                if not group.members:  # the last one left while we waited
                    continue
                start = group.committed[index]  # a shedding group may have moved on meanwhile
                if start >= partition.end:
                    continue
            count = min(options.max_batch, partition.end - start)
            group.taken[index] = start + count
            batch = [r.message for r in partition.between(start, start + count)]
            await self._hand(group, group.members[index % len(group.members)], batch)
            # never backwards: a shedding group may have passed the batch while it ran
            group.committed[index] = max(group.committed[index], start + count)
            self._trim(group.topic, index)

    async def _run_lane(self, group: _Group) -> None:
        topic = group.topic
        options = group.options
        while True:
            if not group.members:
                group.has_members.clear()
                await group.has_members.wait()
                continue
            pending = sum(p.end - c for p, c in zip(topic.partitions, group.committed, strict=True))
            if not pending:
                topic.wakeup.clear()
                await topic.wakeup.wait()
                continue
            if options.linger and pending < options.max_batch:
                await asyncio.sleep(options.linger)
                if not group.members:  # the last one left while we waited
                    continue
            batch = self._oldest(group)
            if not batch:  # a shedding group's records went while it waited
                continue
            for message in batch:
                group.taken[message.partition] = message.offset + 1
            group.turn += 1
            await self._hand(group, group.members[group.turn % len(group.members)], batch)
            committed = group.committed
            for message in batch:  # in order per partition: the last one of each wins
                # never backwards: a shedding group may have passed the batch while it ran
                if message.offset >= committed[message.partition]:
                    committed[message.partition] = message.offset + 1
            for index in {m.partition for m in batch}:
                self._trim(topic, index)

    async def _hand(self, group: _Group, member: _Member, batch: list[BusMessage]) -> None:
        """Deliver a batch to one member, marking it busy meanwhile (``leave`` waits on that)."""
        member.inflight += 1
        member.idle.clear()
        try:
            await deliver(member.handler, batch, group.options, group.name, self._dead_letter)
        finally:
            member.inflight -= 1
            if member.inflight == 0:
                member.idle.set()

    def _oldest(self, group: _Group) -> list[BusMessage]:
        """The group's ``max_batch`` oldest unhandled records over all partitions, in publish
        order (each partition's are in order, and the tokens order them across partitions)."""
        limit = group.options.max_batch
        pending: list[_Record] = []
        merge = False
        for index, partition in enumerate(group.topic.partitions):
            start = group.committed[index]
            if start < partition.end:
                merge = bool(pending)
                pending += partition.between(start, start + limit)
        if merge:
            pending.sort(key=_token)
        return [r.message for r in pending[:limit]]

    async def leave(self, group: _Group, member: _Member, within: float) -> None:
        """Take the member out; wait up to ``within`` seconds for its batch in flight. A handler
        still retrying after that (its database is down, say) is left to ``close``, which
        cancels it; its records were not recorded as handled, so they come again."""
        if member in group.members:
            group.members.remove(member)
        if member.inflight:
            try:
                async with asyncio.timeout(within):
                    await member.idle.wait()
            except TimeoutError:
                log.warning(
                    "bus member left with a batch still in flight",
                    extra={"group": group.name, "topic": group.topic.name},
                )

    async def close(self) -> None:
        tasks = [
            t for topic in self.topics.values() for g in topic.groups.values() for t in g.runners
        ]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def partition_lag(self) -> dict[tuple[str, str, int], int]:
        out: dict[tuple[str, str, int], int] = {}
        for topic in self.topics.values():
            for group in topic.groups.values():
                for index, (p, c) in enumerate(zip(topic.partitions, group.committed, strict=True)):
                    out[(group.name, topic.name, index)] = p.end - c
        return out


class _MemorySubscription(Subscription):
    def __init__(self, bus: MemoryBus, group: _Group, member: _Member) -> None:
        self._bus = bus
        self._group = group
        self._member = member

    async def stop(self) -> None:
        await self._bus.broker.leave(self._group, self._member, self._bus.leave_within)
        self._bus.subscriptions.discard(self)


class MemoryBus(Bus):
    durable: ClassVar[bool] = False

    def __init__(self, broker: MemoryBroker | None = None, *, partitions: int = 8) -> None:
        """Without a broker the client owns a private one and closes it with itself."""
        self._owns_broker = broker is None
        self.leave_within = 5.0  # seconds a stopping member waits for its batch in flight
        self.broker = broker or MemoryBroker(partitions)
        self.subscriptions: set[_MemorySubscription] = set()

    async def publish_many(self, records: Sequence[OutRecord]) -> int:
        token = self.broker.last_token
        for record in records:
            token = self.broker.append(record)
        return token

    def settled(self) -> int:
        return self.broker.settled()

    async def subscribe(
        self,
        topic: str,
        group: str,
        handler: Handler,
        options: ConsumerOptions | None = None,
    ) -> Subscription:
        member = _Member(handler)
        member.idle.set()
        state = self.broker.join(topic, group, member, options or ConsumerOptions())
        subscription = _MemorySubscription(self, state, member)
        self.subscriptions.add(subscription)
        return subscription

    async def close(self) -> None:
        for subscription in list(self.subscriptions):
            await subscription.stop()
        if self._owns_broker:
            await self.broker.close()

    def partition_lag(self) -> dict[tuple[str, str, int], int]:
        return self.broker.partition_lag()
