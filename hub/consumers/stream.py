"""A consumer of the event stream as a part: how every consumer (journal, realtime log, delivery,
and the CRM, automation, AI and analytics consumers) plugs into the hub the same way.

The consumer object is built from the started hub (its pool, secrets, settings), subscribes its
groups on the hub's bus and is stopped in reverse order; a database or bus outage is retried
without limit (:data:`hub.app.TRANSIENT`), never dead-lettered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from hub.bus import Bus, ConsumerOptions, Subscription
from hub.contracts.part import WORKERS, Layer

if TYPE_CHECKING:
    from hub.app import Hub


class Subscriber(Protocol):
    async def subscribe(self, bus: Bus, options: ConsumerOptions) -> list[Subscription]: ...


@dataclasses.dataclass(eq=False)
class StreamConsumer:
    name: str
    #: builds the consumer from the started hub
    make: Callable[[Hub], Subscriber]
    #: records handed to one call of the handler (a bulk writer wants many, a sender few)
    max_batch: int = 100
    #: how long a bulk consumer waits for a fuller batch (seconds)
    linger: float = 0.0
    #: one batch at a time over all partitions (under load a writer's batches then grow rather
    #: than multiply: BENCHMARKS.md, issue 19); off for a consumer whose partitions must not wait
    #: on each other (delivery: a provider's slow answer holds back only its partition)
    single_lane: bool = True
    #: records this consumer may fall behind before it skips its oldest (``ConsumerOptions``);
    #: None for every consumer whose work must not be skipped
    max_lag: int | None = None
    roles: frozenset[str] = WORKERS
    layer: Layer = "consumer"
    _subscriptions: list[Subscription] = dataclasses.field(default_factory=list)

    async def start(self, hub: Hub) -> None:
        from hub.app import TRANSIENT

        if hub.bus is None:
            raise RuntimeError(f"{self.name}: this process role has no bus")
        options = ConsumerOptions(
            max_batch=self.max_batch,
            linger=self.linger,
            single_lane=self.single_lane,
            max_lag=self.max_lag,
            transient=TRANSIENT,
        )
        self._subscriptions = await self.make(hub).subscribe(hub.bus, options)

    async def stop(self) -> None:
        for subscription in reversed(self._subscriptions):
            await subscription.stop()
        self._subscriptions = []

    def health(self) -> Mapping[str, Any]:
        return {}
