"""The in-process backend against the bus conformance suite."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from hub.bus import Bus, BusMessage, ConsumerOptions
from hub.bus.memory import MemoryBroker, MemoryBus
from tests.bus.conformance import BusConformance, BusFactory


class TestMemoryBus(BusConformance):
    @pytest.fixture
    def bus_factory(self) -> BusFactory:
        broker = MemoryBroker(partitions=4)

        async def make() -> Bus:
            bus = MemoryBus(broker)
            await bus.start()
            return bus

        return make


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
