"""The Kafka backend against the bus conformance suite, on a real Apache Kafka broker."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest

from hub.bus import Bus, BusMessage, ConsumerOptions, OutRecord, dead_letter_topic
from hub.bus.kafka import KafkaBus
from tests.bus.conformance import FAST, BusConformance, BusFactory
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


class TestKafkaBusSingleLane(TestKafkaBus):
    """The same promises when a member takes one batch at a time over its partitions."""

    OPTIONS = dataclasses.replace(FAST, single_lane=True)


async def test_a_batch_that_cannot_finish_is_handled_again_not_skipped(
    kafka_server: KafkaServer,
) -> None:
    """If a batch fails outside the handler (its dead letter cannot be published), the member
    rewinds to the batch instead of moving on past records it never finished."""
    bus = KafkaBus(kafka_server.bootstrap, partitions=1, prefix=f"rw-{uuid.uuid4().hex[:8]}.")
    await bus.start()
    real_dead_letter = bus.dead_letter
    dead_letter_failures = [1]

    async def flaky_dead_letter(record: OutRecord) -> None:
        if dead_letter_failures[0]:
            dead_letter_failures[0] -= 1
            raise ConnectionError("broker away while dead-lettering")
        await real_dead_letter(record)

    bus.dead_letter = flaky_dead_letter  # type: ignore[method-assign]
    handled: list[bytes] = []

    async def picky(batch: Sequence[BusMessage]) -> None:
        if any(m.value == b"poison" for m in batch):
            raise ValueError("cannot handle this")
        handled.extend(m.value for m in batch)

    options = ConsumerOptions(max_attempts=1, backoff_initial=0.01, backoff_max=0.02)
    dead: list[bytes] = []

    async def collect(batch: Sequence[BusMessage]) -> None:
        dead.extend(m.value for m in batch)

    await bus.subscribe("t", "g", picky, options)
    await bus.subscribe(dead_letter_topic("t", "g"), "dlq", collect, options)
    for value in (b"one", b"poison", b"two"):
        await bus.publish("t", "k", value)
    async with asyncio.timeout(30):
        while not (b"two" in handled and dead):
            await asyncio.sleep(0.05)
    assert dead == [b"poison"]
    assert dead_letter_failures == [0], "the first dead letter failed"
    assert handled.count(b"two") == 1 and b"one" in handled
    await bus.close()
