"""The Kafka backend against the bus conformance suite, on a real Apache Kafka broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from hub.bus import Bus
from hub.bus.kafka import KafkaBus
from tests.bus.conformance import BusConformance, BusFactory
from tests.support.kafka_server import KafkaServer

pytestmark = pytest.mark.kafka


class TestKafkaBus(BusConformance):
    @pytest.fixture
    async def bus_factory(self, kafka_server: KafkaServer) -> AsyncIterator[BusFactory]:
        made: list[KafkaBus] = []
        prefix = f"conf-{uuid.uuid4().hex[:8]}."  # the conformance suite runs with a prefix

        async def make() -> Bus:
            bus = KafkaBus(kafka_server.bootstrap, partitions=4, prefix=prefix)
            await bus.start()
            made.append(bus)
            return bus

        yield make
        for bus in made:  # closing twice is harmless; tests close what they finish with
            await bus.close()
