"""The in-process backend against the bus conformance suite."""

from __future__ import annotations

import pytest

from hub.bus import Bus
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
