"""What every bus backend promises.

- **At least once**: a record is handed to a group until its handler returns; a crash or a failing
  handler means it comes again. Consumers are idempotent on event id.
- **Order per key**: records with the same key reach a group's handler in publish order; a failing
  record holds back the records behind it on its partition until it succeeds or is dead-lettered.
- **Groups**: every group sees every record; the members of one group share the partitions.
- **Progress** is recorded only after the handler returns.
- **Retries** with exponential backoff, then the record goes to the group's dead-letter topic.
- **Clean shutdown**: ``close`` lets in-flight handlers finish and records their progress.

Handlers take a batch (records in publish order per key) so consumers can write with one
statement and one commit; :func:`each` adapts a per-record handler. A batch holds records of one
partition, or of several for a group with ``single_lane`` (see :class:`ConsumerOptions`).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import ClassVar


@dataclasses.dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    key: str
    value: bytes
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class BusMessage:
    topic: str
    key: str
    value: bytes
    partition: int
    offset: int
    headers: Mapping[str, str]
    attempt: int = 1


Handler = Callable[[Sequence[BusMessage]], Awaitable[None]]


def each(fn: Callable[[BusMessage], Awaitable[None]]) -> Handler:
    """Adapt a per-record handler to the batch contract (records run one after another)."""

    async def handler(batch: Sequence[BusMessage]) -> None:
        for message in batch:
            await fn(message)

    return handler


@dataclasses.dataclass(frozen=True)
class ConsumerOptions:
    """How a group consumes. Errors of a ``transient`` type (a database that is down) are retried
    without limit, since dead-lettering a record because of an outage would lose it for good."""

    max_batch: int = 500
    #: wait this long for a fuller batch when fewer than ``max_batch`` records are ready (a
    #: journal that writes in bulk wants it; a realtime consumer wants 0)
    linger: float = 0.0
    max_attempts: int = 5
    #: False: a member handles a batch per partition, side by side (a sender waiting on a remote
    #: API wants that); True: one batch at a time over all the member's partitions, in publish
    #: order (a bulk writer: under load its batches grow instead of multiplying, so its
    #: statements per record fall). Order per key holds either way.
    single_lane: bool = False
    #: for a group whose work may be skipped rather than hold back the others (the AI's
    #: analysis): on a bus that keeps a record only until every group handled it (the in-process
    #: one), a group more than ``max_lag`` records behind on a partition passes over its oldest
    #: records, counted in ``hub_bus_shed_total``. None: never (every other group). A broker that
    #: keeps records for each group itself (Kafka) ignores it: there the group just lags.
    max_lag: int | None = None
    backoff_initial: float = 0.05
    backoff_max: float = 5.0
    transient: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)


def dead_letter_topic(topic: str, group: str) -> str:
    """Dead letters are per group: a record one consumer cannot handle is still fine for others."""
    return f"{topic}.{group}.dlq"


class Subscription(abc.ABC):
    @abc.abstractmethod
    async def stop(self) -> None:
        """Leave the group after the member's in-flight batch finished and was recorded."""


class Bus(abc.ABC):
    #: True when a record is safe from this process dying once ``publish_many`` returned
    #: (a broker acknowledged it). The in-process bus is not: the outbox keeps its records until
    #: ``settled`` says every group handled them.
    durable: ClassVar[bool]

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect; the default backend needs nothing."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def publish_many(self, records: Sequence[OutRecord]) -> int:
        """Publish in order; return a position token for the last record (monotonic per client)."""

    async def publish(
        self, topic: str, key: str, value: bytes, headers: Mapping[str, str] | None = None
    ) -> int:
        return await self.publish_many([OutRecord(topic, key, value, dict(headers or {}))])

    @abc.abstractmethod
    def settled(self) -> int:
        """Highest position token up to which the publisher no longer needs to keep records."""

    @abc.abstractmethod
    async def subscribe(
        self,
        topic: str,
        group: str,
        handler: Handler,
        options: ConsumerOptions | None = None,
    ) -> Subscription: ...

    def lag(self) -> dict[tuple[str, str], int]:
        """Records not yet handled, per (group, topic)."""
        out: dict[tuple[str, str], int] = {}
        for (group, topic, _), lag in self.partition_lag().items():
            out[(group, topic)] = out.get((group, topic), 0) + lag
        return out

    @abc.abstractmethod
    def partition_lag(self) -> dict[tuple[str, str, int], int]:
        """Records not yet handled, per (group, topic, partition) this client consumes."""

    async def check(self) -> str | None:
        """``None`` when the bus is usable, else why not (for ``/readyz``)."""
        return None
