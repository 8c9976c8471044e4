"""The Apache Kafka backend (aiokafka): what runs when the hub is several processes.

- **Publishing**: an idempotent producer with ``acks=all``; ``publish_many`` returns only once the
  broker acknowledged every record, so the outbox may delete them at once (``durable``). Records
  are keyed (conversation id for conversation events), so order per conversation is the order of
  one partition.
- **Consuming**: one Kafka consumer group per hub consumer kind; a member handles the records of a
  partition in batches through the same delivery rules as every backend (``hub/bus/delivery.py``:
  retries in place with backoff, so order per key holds, then the group's dead-letter topic) and
  commits the offset after the handler returned (in the background, in order, while the next
  batch is fetched). A rebalance or a crash between handling and committing hands the batch to
  the next owner again: at least once, and consumers are idempotent on event id.
- **Topics** are created on first use with the configured partition count and replication factor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError

from hub.bus.contract import Bus, BusMessage, ConsumerOptions, Handler, OutRecord, Subscription
from hub.bus.delivery import deliver

log = logging.getLogger(__name__)


class _Assigned(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped library
    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.event.set()


class _KafkaSubscription(Subscription):
    def __init__(
        self,
        bus: KafkaBus,
        consumer: AIOKafkaConsumer,
        group: str,
        handler: Handler,
        options: ConsumerOptions,
    ) -> None:
        self._bus = bus
        self._consumer = consumer
        self.group = group
        self.topic = ""
        self._handler = handler
        self._options = options
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.committed: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._committing: asyncio.Task[None] | None = None  # the latest offset commit in flight

    def start(self, topic: str) -> None:
        self.topic = topic
        self._task = asyncio.create_task(self._run(), name=f"kafka:{self.group}:{topic}")

    async def _fetch(self) -> dict[TopicPartition, list[Any]]:
        options = self._options
        data: dict[TopicPartition, list[Any]] = await self._consumer.getmany(
            timeout_ms=500, max_records=options.max_batch
        )
        count = sum(len(r) for r in data.values())
        if data and options.linger and count < options.max_batch:
            await asyncio.sleep(options.linger)
            more = await self._consumer.getmany(timeout_ms=0, max_records=options.max_batch - count)
            for tp, records in more.items():
                data.setdefault(tp, []).extend(records)
        return data

    async def _run(self) -> None:
        try:
            await self._consume()
        finally:
            if self._committing is not None:
                await self._committing

    async def _consume(self) -> None:
        while not self._stopping:
            try:
                data = await self._fetch()
            except KafkaError as exc:
                log.warning("kafka fetch failed", extra={"group": self.group, "error": repr(exc)})
                await asyncio.sleep(1.0)
                continue
            if not data or self._stopping:
                continue  # what was fetched and not handled is not committed: it comes again
            self._idle.clear()
            try:
                # partitions are independent: handle them side by side (their writes share
                # group commits), in order within each, and commit all their offsets at once
                if self._options.single_lane:  # one batch over the partitions, each in order
                    await self._handle([(tp, r) for tp, records in data.items() for r in records])
                else:
                    await asyncio.gather(
                        *(self._handle([(tp, r) for r in records]) for tp, records in data.items())
                    )
                self._commit_soon({tp: records[-1].offset + 1 for tp, records in data.items()})
            except Exception as exc:  # a dead letter that could not be published, say
                # the consumer's position is past these records: rewind, so they come again
                log.warning(
                    "kafka batch not finished; it will be handled again",
                    extra={"group": self.group, "topic": self.topic, "error": repr(exc)},
                )
                for tp, records in data.items():
                    self._consumer.seek(tp, records[0].offset)
                await asyncio.sleep(1.0)
            finally:
                self._idle.set()

    async def _handle(self, records: list[tuple[TopicPartition, Any]]) -> None:
        batch = [
            BusMessage(
                self.topic,  # the hub's name for it, without the prefix
                r.key.decode() if r.key is not None else "",
                r.value,
                tp.partition,
                r.offset,
                {k: v.decode() for k, v in (r.headers or ())},
            )
            for tp, r in records
        ]
        await deliver(self._handler, batch, self._options, self.group, self._bus.dead_letter)

    def _commit_soon(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit while the next batch is fetched and handled: the broker's round trip is then off
        the path of the records that arrive meanwhile. Commits still land one after another, in
        order (a later offset never lands before an earlier one)."""
        previous = self._committing

        async def commit() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):  # _commit logged what it could not do
                    await previous
            await self._commit(offsets)

        self._committing = asyncio.create_task(commit(), name=f"kafka-commit:{self.group}")

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self._consumer.commit(offsets)
            self.committed.update(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # a partition moved to another member during the batch: it handles it again
            log.warning(
                "kafka commit failed; the batch will be handled again",
                extra={"group": self.group, "error": repr(exc)},
            )

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            try:
                async with asyncio.timeout(self._bus.leave_within):
                    await self._idle.wait()
                    await self._task
            except TimeoutError:
                log.warning(
                    "kafka member left with a batch still in flight",
                    extra={"group": self.group, "topic": self.topic},
                )
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        await self._consumer.stop()
        self._bus.subscriptions.discard(self)

    def partition_lag(self) -> dict[int, int]:
        """Per assigned partition: the broker's end offset minus what this member committed."""
        out: dict[int, int] = {}
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is not None:
                out[tp.partition] = max(0, high - self.committed.get(tp, high))
        return out


class KafkaBus(Bus):
    durable: ClassVar[bool] = True

    def __init__(
        self,
        bootstrap: str,
        *,
        partitions: int = 8,
        replication: int = 1,
        client_id: str = "hub",
        prefix: str = "",
    ) -> None:
        """``prefix`` goes before every topic and group name: several hubs (or test runs) can
        share one Kafka cluster without seeing each other's events."""
        self._bootstrap = bootstrap
        self.prefix = prefix
        self._partitions = partitions
        self._replication = replication
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._topics: set[str] = set()
        self._topic_lock = asyncio.Lock()
        self._token = 0
        self.leave_within = 10.0
        self._closed = False
        self.subscriptions: set[_KafkaSubscription] = set()

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=1,
            request_timeout_ms=15_000,
            retry_backoff_ms=500,
        )
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=self._bootstrap,
            client_id=f"{self._client_id}-admin",
            retry_backoff_ms=500,
        )
        await self._producer.start()
        await self._admin.start()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for subscription in list(self.subscriptions):
            await subscription.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._admin is not None:
            await self._admin.close()

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        missing = sorted(set(topics) - self._topics)
        if not missing:
            return
        async with self._topic_lock:
            missing = sorted(set(missing) - self._topics)
            if not missing:
                return
            assert self._admin is not None, "start() first"
            new = [NewTopic(t, self._partitions, self._replication) for t in missing]
            with contextlib.suppress(TopicAlreadyExistsError):
                await self._admin.create_topics(new)
            self._topics.update(missing)

    async def publish_many(self, records: Sequence[OutRecord]) -> int:
        assert self._producer is not None, "start() first"
        await self.ensure_topics([self.prefix + r.topic for r in records])
        futures = [
            await self._producer.send(
                self.prefix + r.topic,
                value=r.value,
                key=r.key.encode(),
                headers=[(k, v.encode()) for k, v in r.headers.items()],
            )
            for r in records
        ]
        await asyncio.gather(*futures)  # acknowledged by all in-sync replicas
        self._token += len(records)
        return self._token

    async def dead_letter(self, record: OutRecord) -> None:
        await self.publish_many([record])

    def settled(self) -> int:
        return self._token  # every publish_many that returned was acknowledged

    async def subscribe(
        self,
        topic: str,
        group: str,
        handler: Handler,
        options: ConsumerOptions | None = None,
    ) -> Subscription:
        await self.ensure_topics([self.prefix + topic])
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=f"{self._client_id}-{group}",
            group_id=self.prefix + group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            heartbeat_interval_ms=500,
            session_timeout_ms=10_000,
            max_poll_interval_ms=600_000,
            retry_backoff_ms=500,
        )
        assigned = _Assigned()
        consumer.subscribe([self.prefix + topic], listener=assigned)
        await consumer.start()
        subscription = _KafkaSubscription(
            self, consumer, group, handler, options or ConsumerOptions()
        )
        subscription.start(topic)
        self.subscriptions.add(subscription)
        async with asyncio.timeout(60):  # joined the group and owns its share of partitions
            await assigned.event.wait()
        return subscription

    def partition_lag(self) -> dict[tuple[str, str, int], int]:
        return {
            (s.group, s.topic, partition): lag
            for s in self.subscriptions
            for partition, lag in s.partition_lag().items()
        }

    async def check(self) -> str | None:
        """Ask the broker for the cluster's metadata: reachable and answering, or why not."""
        if self._admin is None:
            return "not started"
        try:
            async with asyncio.timeout(2):
                await self._admin.describe_cluster()
        except (TimeoutError, KafkaError, OSError) as exc:
            return f"unavailable: {type(exc).__name__}"
        return None
