"""The bus conformance suite: every backend must pass it.

A backend's test module subclasses :class:`BusConformance` and provides the ``bus_factory``
fixture: a callable that returns a new, started client of one shared broker (the same cluster for
Kafka), so "restart" means a new client resuming where the group's recorded progress says.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar

import pytest

from hub.bus import Bus, BusMessage, ConsumerOptions, dead_letter_topic

BusFactory = Callable[[], Awaitable[Bus]]
FAST = ConsumerOptions(max_batch=50, max_attempts=3, backoff_initial=0.01, backoff_max=0.05)


def _topic() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def _eventually(check: Callable[[], bool], within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


class Collector:
    def __init__(self) -> None:
        self.seen: list[BusMessage] = []

    async def __call__(self, batch: Sequence[BusMessage]) -> None:
        self.seen.extend(batch)

    def values(self) -> list[bytes]:
        return [m.value for m in self.seen]


class BusConformance:
    #: how the suite's groups consume (a subclass runs it again with ``single_lane``, say)
    OPTIONS: ClassVar[ConsumerOptions] = FAST

    @pytest.fixture
    def bus_factory(self) -> BusFactory:
        raise NotImplementedError("backend test modules override this fixture")

    async def test_order_is_kept_per_key(self, bus_factory: BusFactory) -> None:
        bus = await bus_factory()
        topic = _topic()
        got = Collector()
        await bus.subscribe(topic, "g", got, self.OPTIONS)
        sent: dict[str, list[bytes]] = collections.defaultdict(list)
        for i in range(300):
            key = f"k{i % 7}"
            value = f"{key}:{i}".encode()
            sent[key].append(value)
            await bus.publish(topic, key, value)
        await _eventually(lambda: len(got.seen) >= 300)
        by_key: dict[str, list[bytes]] = collections.defaultdict(list)
        for m in got.seen:
            by_key[m.key].append(m.value)
        assert by_key == sent
        await bus.close()

    async def test_failed_handler_is_redelivered_in_order(self, bus_factory: BusFactory) -> None:
        bus = await bus_factory()
        topic = _topic()
        failures = {b"a:1": 2}
        handled: list[bytes] = []
        attempts: list[int] = []

        async def flaky(batch: Sequence[BusMessage]) -> None:
            for m in batch:
                if failures.get(m.value, 0) > 0:
                    failures[m.value] -= 1
                    attempts.append(m.attempt)
                    raise RuntimeError("temporary")
            handled.extend(m.value for m in batch)

        await bus.subscribe(topic, "g", flaky, self.OPTIONS)
        for i in range(4):
            await bus.publish(topic, "a", f"a:{i}".encode())
        await _eventually(lambda: b"a:3" in handled)
        # every record handled, the failed one after its retries, and order per key kept
        first_seen = list(dict.fromkeys(handled))
        assert first_seen == [b"a:0", b"a:1", b"a:2", b"a:3"]
        assert len(attempts) == 2, "the failing record was delivered again after each failure"
        await bus.close()

    async def test_poison_record_is_dead_lettered_and_the_rest_flows(
        self, bus_factory: BusFactory
    ) -> None:
        bus = await bus_factory()
        topic = _topic()
        handled: list[bytes] = []

        async def picky(batch: Sequence[BusMessage]) -> None:
            for m in batch:
                if m.value == b"poison":
                    raise ValueError("cannot handle this")
            handled.extend(m.value for m in batch)

        dead = Collector()
        await bus.subscribe(topic, "g", picky, self.OPTIONS)
        await bus.subscribe(dead_letter_topic(topic, "g"), "dlq-reader", dead, self.OPTIONS)
        other = Collector()
        await bus.subscribe(topic, "other", other, self.OPTIONS)
        for value in (b"one", b"poison", b"two"):
            await bus.publish(topic, "k", value)
        await _eventually(lambda: b"two" in handled and len(dead.seen) == 1)
        assert dead.seen[0].value == b"poison"
        assert dead.seen[0].headers["dlq.group"] == "g"
        assert b"poison" not in handled
        # the other group was not affected by g's dead letter
        await _eventually(lambda: len(other.seen) == 3)
        assert other.values() == [b"one", b"poison", b"two"]
        await bus.close()

    async def test_every_group_sees_every_record(self, bus_factory: BusFactory) -> None:
        bus = await bus_factory()
        topic = _topic()
        first, second = Collector(), Collector()
        await bus.subscribe(topic, "first", first, self.OPTIONS)
        await bus.subscribe(topic, "second", second, self.OPTIONS)
        values = [f"v{i}".encode() for i in range(100)]
        for i, v in enumerate(values):
            await bus.publish(topic, f"k{i % 5}", v)
        await _eventually(lambda: len(first.seen) >= 100 and len(second.seen) >= 100)
        assert sorted(first.values()) == sorted(values)
        assert sorted(second.values()) == sorted(values)
        await bus.close()

    async def test_members_of_a_group_share_the_work(self, bus_factory: BusFactory) -> None:
        bus_a, bus_b = await bus_factory(), await bus_factory()
        topic = _topic()
        a, b = Collector(), Collector()
        await bus_a.subscribe(topic, "shared", a, self.OPTIONS)
        await bus_b.subscribe(topic, "shared", b, self.OPTIONS)
        for i in range(200):
            await bus_a.publish(topic, f"k{i}", f"v{i}".encode())
        await _eventually(lambda: len(set(a.values()) | set(b.values())) == 200)
        assert a.seen and b.seen, "both members got a share"
        assert not set(a.values()) & set(b.values()), "no record went to both members"
        await bus_a.close()
        await bus_b.close()

    async def test_restart_resumes_from_recorded_progress(self, bus_factory: BusFactory) -> None:
        topic = _topic()
        first = await bus_factory()
        got = Collector()
        await first.subscribe(topic, "resumer", got, self.OPTIONS)
        for i in range(10):
            await first.publish(topic, "k", f"v{i}".encode())
        await _eventually(lambda: len(got.seen) == 10)
        await first.close()

        producer = await bus_factory()
        for i in range(10, 15):
            await producer.publish(topic, "k", f"v{i}".encode())
        second = await bus_factory()
        again = Collector()
        await second.subscribe(topic, "resumer", again, self.OPTIONS)
        await _eventually(lambda: len(again.seen) >= 5)
        await asyncio.sleep(0.2)
        assert again.values() == [f"v{i}".encode() for i in range(10, 15)]
        await second.close()
        await producer.close()

    async def test_close_lets_the_inflight_batch_finish(self, bus_factory: BusFactory) -> None:
        bus = await bus_factory()
        topic = _topic()
        started = asyncio.Event()
        finished: list[bytes] = []

        async def slow(batch: Sequence[BusMessage]) -> None:
            started.set()
            await asyncio.sleep(0.3)
            finished.extend(m.value for m in batch)

        await bus.subscribe(topic, "slow", slow, self.OPTIONS)
        await bus.publish(topic, "k", b"x")
        await started.wait()
        await bus.close()
        assert finished == [b"x"]

        # progress was recorded: a new client in the same group does not see it again
        again = await bus_factory()
        seen = Collector()
        await again.subscribe(topic, "slow", seen, self.OPTIONS)
        await again.publish(topic, "k", b"y")
        await _eventually(lambda: len(seen.seen) >= 1)
        await asyncio.sleep(0.1)
        assert seen.values() == [b"y"]
        await again.close()

    async def test_settled_covers_handled_records(self, bus_factory: BusFactory) -> None:
        bus = await bus_factory()
        topic = _topic()
        gate = asyncio.Event()

        async def gated(batch: Sequence[BusMessage]) -> None:
            await gate.wait()

        await bus.subscribe(topic, "gated", gated, self.OPTIONS)
        token = await bus.publish(topic, "k", b"x")
        if not bus.durable:
            await asyncio.sleep(0.05)
            assert bus.settled() < token, "an unhandled record is not settled"
        gate.set()
        await _eventually(lambda: bus.settled() >= token)
        await bus.close()
