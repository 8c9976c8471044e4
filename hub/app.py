"""Wiring: one container that starts the store, the bus, the actions and the consumers in order
and stops them in reverse. Every process role builds its parts from here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from channels.sip.service import VoiceService
from hub.actions.group_commit import GroupCommitter
from hub.actions.ingest import IngestRequest, IngestResult, count_committed, ingest_batch
from hub.actions.setup import ensure_default_account
from hub.bus import Bus, ConsumerOptions, Subscription
from hub.bus.memory import MemoryBus
from hub.config import Config
from hub.consumers.delivery import Delivery
from hub.consumers.journal import Journal
from hub.relay import OutboxRelay
from hub.secrets import SecretBox, load_secret_box
from hub.store.db import create_pool
from hub.store.embedded import start_embedded_postgres
from hub.store.migrate import migrate
from realtime.cluster import Cluster, make_cluster
from realtime.consumer import RealtimeConsumer
from realtime.log import trim as trim_realtime_log

log = logging.getLogger(__name__)

#: errors that mean "the database is not reachable right now", never "bad input"
DB_UNAVAILABLE = (
    OSError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    # a connection caught mid-operation by a server shutdown ("cannot switch to state ...");
    # seen in the postgres-restart fault scenario: the request is retried, not a 500
    asyncpg.InternalClientError,
)


async def resolve_dsn(config: Config) -> str:
    if config.database_url:
        return config.database_url
    return await start_embedded_postgres(Path(config.data_dir))


def make_bus(config: Config) -> Bus:
    if config.kafka_bootstrap:
        from hub.bus.kafka import KafkaBus

        return KafkaBus(
            config.kafka_bootstrap,
            partitions=config.bus_partitions,
            replication=config.kafka_replication,
            prefix=config.kafka_prefix,
        )
    return MemoryBus(partitions=config.bus_partitions)


class Hub:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.dsn = ""
        self.pool: asyncpg.Pool[Any]
        self.box: SecretBox
        self.account_id = ""
        self.ingest: GroupCommitter[IngestRequest, IngestResult]
        #: worker parts (role ``all`` or ``worker``); a gateway-only process has none
        self.bus: Bus | None = None
        self.relay: OutboxRelay | None = None
        self._realtime: RealtimeConsumer | None = None
        self._subscriptions: list[Subscription] = []
        #: called with the accounts whose realtime log grew, in any process (``None``: maybe any
        #: account); the socket layer wakes its streams
        self.realtime_listeners: list[Callable[[set[str] | None], None]] = []
        #: called when an agent went offline because its hub process vanished
        self.offline_listeners: list[Callable[[str, str], Awaitable[None]]] = []
        #: presence (what routing reads) and wake-ups shared by the hub processes
        self.cluster: Cluster = make_cluster(config)
        self._trim_task: asyncio.Task[None] | None = None
        #: the SIP user agent's side (roles ``all`` and ``voice``)
        self.voice: VoiceService | None = None

    async def start(self) -> None:
        config = self.config
        self.box = load_secret_box(config)
        self.dsn = await resolve_dsn(config)
        self.pool = await create_pool(self.dsn, config.db_pool_size)
        async with self.pool.acquire() as conn:
            await migrate(conn)
            self.account_id = await ensure_default_account(conn)
        await self.cluster.start(self._cluster_logged, self._agent_offline)
        if config.role in ("all", "worker"):
            await self._start_workers()
        self.ingest = GroupCommitter(
            "ingest",
            self.pool,
            ingest_batch,
            max_batch=config.ingest_batch_max,
            min_batch=config.ingest_batch_min,
            wait=config.ingest_batch_wait_ms / 1000,
            concurrency=config.ingest_concurrency,
            on_commit=count_committed,
        )
        if config.role in ("all", "gateway", "voice"):
            self.ingest.start()
        if config.role in ("all", "voice"):
            if self.bus is None:  # the voice role hears agents' decisions on the bus
                self.bus = make_bus(config)
                await self.bus.start()
            self.voice = VoiceService(self, max_calls=config.voice_max_calls)
            await self.voice.start()

    async def _start_workers(self) -> None:
        """The bus, the consumers and the outbox relay: what a ``worker`` process runs."""
        config = self.config
        self.bus = bus = make_bus(config)
        await bus.start()
        transient = (ConnectionError, TimeoutError, *DB_UNAVAILABLE)
        journal = ConsumerOptions(max_batch=2000, linger=0.2, transient=transient)
        self._subscriptions += await Journal(self.pool).subscribe(bus, journal)
        realtime = ConsumerOptions(max_batch=500, transient=transient)
        self._realtime = RealtimeConsumer(self.pool, self._realtime_logged)
        self._realtime.start()
        self._subscriptions += await self._realtime.subscribe(bus, realtime)
        self._trim_task = asyncio.create_task(self._trim_realtime_log(), name="realtime-trim")
        # agents' replies out through their channels (sends wait on providers: small batches)
        delivery = ConsumerOptions(max_batch=50, transient=transient)
        self._subscriptions += await Delivery(self.pool, self.box, config).subscribe(bus, delivery)
        # the relay starts after the consumers, so the in-process bus has its groups
        self.relay = OutboxRelay(self.dsn, bus, poll_interval=config.outbox_poll_ms / 1000)
        self.relay.start()

    def _realtime_logged(self, accounts: set[str]) -> None:
        self.cluster.logged(accounts)

    def _cluster_logged(self, accounts: set[str] | None) -> None:
        for listener in self.realtime_listeners:
            listener(accounts)

    async def _agent_offline(self, account_id: str, agent_id: str) -> None:
        for listener in self.offline_listeners:
            await listener(account_id, agent_id)

    async def _trim_realtime_log(self) -> None:
        """Keep the replay log bounded; a reconnect from before what is kept gets 'resync'."""
        while True:
            await asyncio.sleep(60)
            try:
                await trim_realtime_log(self.pool, self.config.realtime_replay_events)
            except DB_UNAVAILABLE as exc:
                log.warning("realtime log trim failed", extra={"error": repr(exc)})

    async def stop(self) -> None:
        """Stop taking work, finish what was accepted, then close the parts in reverse order."""
        if self._trim_task is not None:
            self._trim_task.cancel()
        if self.voice is not None:
            await self.voice.stop()
        await self.ingest.stop()
        if self.relay is not None:
            if not await self.relay.drain(within=5.0):
                log.warning("outbox not drained at shutdown; the rest is published at next start")
            await self.relay.stop()
        for subscription in self._subscriptions:
            await subscription.stop()
        if self._realtime is not None:
            await self._realtime.stop()
        await self.cluster.stop()
        if self.bus is not None:
            await self.bus.close()
        await self.pool.close()
