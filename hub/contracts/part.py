"""A part: anything the composition root plugs into a running hub (a consumer of the event stream,
a source of messages such as the SIP user agent, a shared service such as presence).

The core starts parts in three layers and stops them in reverse, so nothing loses work on the way
down:

``shared``   started first, stopped last (presence and wake-ups every other part may use)
``consumer`` subscribed before the outbox relay publishes; stopped after it has drained
``source``   started once ingest runs; stopped first, before ingest stops taking work

Each part says in which process roles it runs (``all``, ``gateway``, ``worker``, ``voice``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from hub.app import Hub

Layer = Literal["shared", "consumer", "source"]
LAYERS: tuple[Layer, ...] = ("shared", "consumer", "source")

EVERY_ROLE = frozenset({"all", "gateway", "worker", "voice"})
#: where the bus consumers run: the single process, or the workers of a scaled deployment
WORKERS = frozenset({"all", "worker"})


class Part(Protocol):
    name: str
    layer: Layer
    roles: frozenset[str]

    async def start(self, hub: Hub) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> Mapping[str, Any]:
        """Checks for ``/readyz`` (name -> state); empty when the part has none."""
        ...
