"""Realtime as parts of the hub.

:class:`Live` (every role) runs the cluster: agent presence, which it hands to the core as its
:class:`~hub.contracts.presence.Presence`, and what the replay log's writer just logged, which
reaches every process's socket streams (the rows themselves, or "the log grew" wake-ups).
:class:`ReplayLog` (the workers) is the consumer that writes the replay log from the event
stream, and keeps it bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from hub.app import DB_UNAVAILABLE, TRANSIENT, Hub
from hub.bus import ConsumerOptions, Subscription
from hub.config import Config
from hub.contracts.part import EVERY_ROLE, WORKERS, Layer
from realtime.cluster import Cluster, make_cluster
from realtime.consumer import RealtimeConsumer
from realtime.log import Logged
from realtime.log import trim as trim_realtime_log

log = logging.getLogger(__name__)

TRIM_EVERY_S = 60.0


class Live:
    name = "presence"
    layer: Layer = "shared"
    roles = EVERY_ROLE

    def __init__(self, config: Config) -> None:
        self._dsn = ""
        self.cluster: Cluster = make_cluster(config, lambda: self._dsn)
        #: called in every process with what each commit of the replay log added, in commit
        #: order (directly in the writer's process, through the cluster's notices in the others):
        #: the socket streams send it without reading it back
        self.committed_listeners: list[Callable[[Logged], None]] = []
        #: called with the accounts whose realtime log grew by rows not handed over (``None``:
        #: maybe any account); the socket layer's streams read the log
        self.logged_listeners: list[Callable[[set[str] | None], None]] = []
        #: called when an agent went offline because its hub process vanished
        self.offline_listeners: list[Callable[[str, str], Awaitable[None]]] = []

    async def start(self, hub: Hub) -> None:
        self._dsn = hub.dsn
        await self.cluster.start(self._logged, self._offline, self.committed)

    async def stop(self) -> None:
        await self.cluster.stop()

    def health(self) -> Mapping[str, Any]:
        return {}

    def committed(self, logged: Logged) -> None:
        for listener in self.committed_listeners:
            listener(logged)

    def _logged(self, accounts: set[str] | None) -> None:
        for listener in self.logged_listeners:
            listener(accounts)

    async def _offline(self, account_id: str, agent_id: str) -> None:
        for listener in self.offline_listeners:
            await listener(account_id, agent_id)


class ReplayLog:
    name = "realtime"
    layer: Layer = "consumer"
    roles = WORKERS

    def __init__(self, live: Live) -> None:
        self._live = live
        self._consumer: RealtimeConsumer | None = None
        self._subscriptions: list[Subscription] = []
        self._trim: asyncio.Task[None] | None = None

    async def start(self, hub: Hub) -> None:
        assert hub.bus is not None
        self._consumer = RealtimeConsumer(hub.pool, self._live.cluster.committed)
        self._consumer.start()
        options = ConsumerOptions(max_batch=500, single_lane=True, transient=TRANSIENT)
        self._subscriptions = await self._consumer.subscribe(hub.bus, options)
        self._trim = asyncio.create_task(self._trim_loop(hub), name="realtime-trim")

    async def stop(self) -> None:
        if self._trim is not None:
            self._trim.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._trim
        for subscription in self._subscriptions:
            await subscription.stop()
        if self._consumer is not None:
            await self._consumer.stop()

    def health(self) -> Mapping[str, Any]:
        return {}

    async def _trim_loop(self, hub: Hub) -> None:
        """Keep the replay log bounded; a reconnect from before what is kept gets 'resync'."""
        while True:
            await asyncio.sleep(TRIM_EVERY_S)
            try:
                await trim_realtime_log(hub.pool, hub.config.realtime_replay_events)
            except DB_UNAVAILABLE as exc:
                log.warning("realtime log trim failed", extra={"error": repr(exc)})
