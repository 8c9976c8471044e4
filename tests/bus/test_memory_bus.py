"""The in-process backend against the bus conformance suite."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import pytest

from hub.bus import Bus, BusMessage, ConsumerOptions, Handler
from hub.bus.memory import MemoryBroker, MemoryBus
from hub.metrics import BUS_BATCHES, BUS_RECORDS
from tests.bus.conformance import FAST, BusConformance, BusFactory


class TestMemoryBus(BusConformance):
    @pytest.fixture
    def bus_factory(self) -> BusFactory:
        broker = MemoryBroker(partitions=4)

        async def make() -> Bus:
            bus = MemoryBus(broker)
            await bus.start()
            return bus

        return make


class TestMemoryBusSingleLane(TestMemoryBus):
    """The same promises when a group takes one batch at a time over all partitions."""

    OPTIONS = dataclasses.replace(FAST, single_lane=True)


async def test_a_single_lane_takes_what_piled_up_in_publish_order_in_one_batch() -> None:
    """What arrives while a single-lane handler works is its next batch, whole and in publish
    order across partitions; a group of per-partition lanes gets it as a batch per partition."""
    bus = MemoryBus(MemoryBroker(partitions=4))
    gate = asyncio.Event()
    lane: list[list[bytes]] = []
    lanes: list[list[bytes]] = []

    def collect(into: list[list[bytes]]) -> Handler:
        async def handler(batch: Sequence[BusMessage]) -> None:
            into.append([m.value for m in batch])
            await gate.wait()

        return handler

    options = ConsumerOptions(max_batch=500)
    batches = BUS_BATCHES.labels("single")._value.get()
    records = BUS_RECORDS.labels("single")._value.get()
    single = dataclasses.replace(options, single_lane=True)
    await bus.subscribe("t", "single", collect(lane), single)
    await bus.subscribe("t", "per-partition", collect(lanes), options)
    await bus.publish("t", "first", b"first")
    async with asyncio.timeout(5):
        while not lane:
            await asyncio.sleep(0.01)
    values = [f"v{i}".encode() for i in range(40)]
    for i, value in enumerate(values):
        await bus.publish("t", f"k{i}", value)
    gate.set()
    async with asyncio.timeout(5):
        while sum(map(len, lane)) < 41 or sum(map(len, lanes)) < 41:
            await asyncio.sleep(0.01)
    assert lane == [[b"first"], values], "one batch for what piled up, in publish order"
    # what /metrics says of it: two batches, 41 records
    assert BUS_BATCHES.labels("single")._value.get() - batches == 2
    assert BUS_RECORDS.labels("single")._value.get() - records == 41
    assert len(lanes) > 2, "per-partition lanes: a batch per partition"
    await bus.close()


async def test_close_is_bounded_when_a_handler_keeps_failing_transiently() -> None:
    """A consumer whose database is down retries forever; shutting down must still finish."""
    bus = MemoryBus()
    bus.leave_within = 0.2
    attempts: list[int] = []

    async def down(batch: Sequence[BusMessage]) -> None:
        attempts.append(batch[0].attempt)
        raise ConnectionError("database is down")

    options = ConsumerOptions(max_attempts=2, backoff_initial=0.01, backoff_max=0.02)
    await bus.subscribe("t", "g", down, options)
    await bus.publish("t", "k", b"x")
    async with asyncio.timeout(5):
        while len(attempts) < 4:
            await asyncio.sleep(0.01)
    assert max(attempts) > options.max_attempts, "transient errors are not dead-lettered"
    async with asyncio.timeout(3):
        await bus.close()


@pytest.mark.parametrize("single_lane", [False, True])
async def test_the_last_member_leaving_while_the_group_lingers_loses_nothing(
    single_lane: bool,
) -> None:
    """A runner waiting for a fuller batch when its group's last member leaves (a shutdown) goes
    back to waiting for members; the record comes to the next member that joins."""
    broker = MemoryBroker(partitions=4)
    bus = MemoryBus(broker)
    options = ConsumerOptions(linger=0.2, single_lane=single_lane)
    first: list[bytes] = []

    async def handler(batch: Sequence[BusMessage]) -> None:
        first.extend(m.value for m in batch)

    subscription = await bus.subscribe("t", "g", handler, options)
    await bus.publish("t", "k", b"x")
    await asyncio.sleep(0.05)  # the runner is lingering
    await subscription.stop()
    await asyncio.sleep(0.3)
    runners = broker.topics["t"].groups["g"].runners
    assert all(not r.done() for r in runners), "a runner died"
    again: list[bytes] = []

    async def second(batch: Sequence[BusMessage]) -> None:
        again.extend(m.value for m in batch)

    await bus.subscribe("t", "g", second, options)
    async with asyncio.timeout(5):
        while not again:
            await asyncio.sleep(0.01)
    assert first == [] and again == [b"x"]
    await bus.close()


@pytest.mark.parametrize("single_lane", [False, True])
async def test_a_group_that_may_fall_behind_skips_its_oldest_and_holds_back_nobody(
    single_lane: bool,
) -> None:
    """A stuck group with ``max_lag`` no longer holds the settle point (the relay's limit on
    unsettled records) once it is that far behind: the others handle everything, it passes over
    its oldest, counted, and then goes on in order from the newest ``max_lag`` records, never
    back. A stuck group without ``max_lag`` still holds every record."""
    from hub.metrics import BUS_SHED

    bus = MemoryBus(MemoryBroker(partitions=4))
    gate = asyncio.Event()
    slow: list[bytes] = []
    fast: list[bytes] = []

    async def stuck(batch: Sequence[BusMessage]) -> None:
        slow.extend(m.value for m in batch)
        await gate.wait()

    async def quick(batch: Sequence[BusMessage]) -> None:
        fast.extend(m.value for m in batch)

    options = ConsumerOptions(max_batch=5, single_lane=single_lane)
    shed_before = BUS_SHED.labels("ai-like", "t")._value.get()
    await bus.subscribe("t", "ai-like", stuck, dataclasses.replace(options, max_lag=10))
    await bus.subscribe("t", "journal-like", quick, options)
    values = [str(i).encode() for i in range(100)]
    await bus.publish("t", "one-key", values[0])
    async with asyncio.timeout(5):
        while not slow:  # the first batch is in the stuck handler
            await asyncio.sleep(0.01)
    last = 0
    for value in values[1:]:
        last = await bus.publish("t", "one-key", value)
    async with asyncio.timeout(5):
        while len(fast) < 100:
            await asyncio.sleep(0.01)
    assert fast == values
    assert bus.settled() >= last - 10, "the stuck group held back more than its max_lag"
    assert BUS_SHED.labels("ai-like", "t")._value.get() - shed_before == 89
    gate.set()
    async with asyncio.timeout(5):
        while slow[-1] != values[-1]:
            await asyncio.sleep(0.01)
    assert slow == values[:1] + values[-10:], "in order, the newest 10 after the one in flight"
    assert bus.settled() == last

    held = MemoryBus(MemoryBroker(partitions=4))
    stop = asyncio.Event()

    async def blocked(batch: Sequence[BusMessage]) -> None:
        await stop.wait()

    await held.subscribe("t", "lossless", blocked, options)
    first = await held.publish("t", "one-key", b"first")
    for value in values:
        await held.publish("t", "one-key", value)
    await asyncio.sleep(0.05)
    assert held.settled() < first, "a group without max_lag must hold every record"
    stop.set()
    await bus.close()
    await held.close()
