"""The core's running container: the store, the bus, the ingest committer and the outbox relay, and
the parts the composition root (``server``) plugs in, started in order and stopped in reverse.

The core imports no part: realtime, channels, consumers and services arrive as
:class:`~hub.contracts.part.Part` objects, presence as a :class:`~hub.contracts.presence.Presence`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg

from hub.actions.group_commit import GroupCommitter
from hub.actions.ingest import IngestRequest, IngestResult, count_committed, ingest_batch
from hub.actions.setup import ensure_default_account
from hub.auth.access import AccessTokens
from hub.auth.callers import Authenticator
from hub.bus import Bus
from hub.bus.memory import MemoryBus
from hub.config import Config
from hub.contracts.part import LAYERS, Part
from hub.contracts.presence import NobodyOnline, Presence
from hub.contracts.typing import AgentTyping, NobodyListens
from hub.relay import OutboxRelay
from hub.secrets import SecretBox, load_secret_box
from hub.store.db import DB_UNAVAILABLE as DB_UNAVAILABLE  # where the doors import it
from hub.store.db import create_pool
from hub.store.embedded import start_embedded_postgres
from hub.store.migrate import migrate

log = logging.getLogger(__name__)


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


#: what a consumer retries without limit: the bus or the database is away, never bad input
TRANSIENT: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, *DB_UNAVAILABLE)

#: roles that publish the outbox and run the consumers; the voice role needs a bus too
BUS_ROLES = frozenset({"all", "worker", "voice", "ai"})
#: workers too: their sources (email inboxes' IMAP readers; voice in the worker child of a split
#: role all) submit to the group committer, which idles where nothing does
INGEST_ROLES = frozenset({"all", "gateway", "voice", "worker"})
RELAY_ROLES = frozenset({"all", "worker"})


class Hub:
    def __init__(
        self,
        config: Config,
        *,
        parts: Sequence[Part] = (),
        presence: Presence | None = None,
    ) -> None:
        self.config = config
        self.dsn = ""
        self.pool: asyncpg.Pool[Any]
        self.box: SecretBox
        self.account_id = ""
        #: who is calling, for REST and sockets alike (one cache, one ``forget``)
        self.callers: Authenticator
        self.ingest: GroupCommitter[IngestRequest, IngestResult]
        self.bus: Bus | None = None
        self.relay: OutboxRelay | None = None
        #: every part the composition root gave, in start order; only those of this role run
        self.parts: tuple[Part, ...] = tuple(parts)
        #: who is online (what call routing and assignment read)
        self.presence: Presence = presence or NobodyOnline()
        #: who shows an agent's typing to the customer (the channels' part installs it)
        self.typing: AgentTyping = NobodyListens()
        self._running: list[Part] = []

    def part(self, name: str) -> Part | None:
        return next((p for p in self.parts if p.name == name), None)

    def _ours(self, layer: str) -> list[Part]:
        role = self.config.role
        return [p for p in self.parts if p.layer == layer and role in p.roles]

    async def start(self) -> None:
        config = self.config
        self.box = load_secret_box(config)
        self.dsn = await resolve_dsn(config)
        self.pool = await create_pool(self.dsn, config.db_pool_size)
        access = AccessTokens(
            self.box.derive("access-token"),
            config.access_token_minutes * 60,
            self.box.derive_all("access-token")[1:],  # tokens signed before a key rotation
        )
        self.callers = Authenticator(self.pool, access)
        async with self.pool.acquire() as conn:
            await migrate(conn)
            self.account_id = await ensure_default_account(conn)
        if config.role in BUS_ROLES:
            self.bus = make_bus(config)
            await self.bus.start()
        self.ingest = GroupCommitter(
            "ingest",
            self.pool,
            ingest_batch,
            max_batch=config.ingest_batch_max,
            min_batch=config.ingest_batch_min,
            wait=config.ingest_batch_wait_ms / 1000,
            concurrency=config.ingest_concurrency,
            on_commit=count_committed,
            own_transaction=True,
        )
        for part in self._ours("shared") + self._ours("consumer"):
            await self._start(part)
        if config.role in RELAY_ROLES:
            # after the consumers, so the in-process bus has their groups
            assert self.bus is not None
            self.relay = OutboxRelay(self.dsn, self.bus, poll_interval=config.outbox_poll_ms / 1000)
            self.relay.start()
        if config.role in INGEST_ROLES:
            self.ingest.start()
        for part in self._ours("source"):
            await self._start(part)

    async def _start(self, part: Part) -> None:
        await part.start(self)
        self._running.append(part)

    def health(self) -> dict[str, Any]:
        """The running parts' checks for ``/readyz``."""
        checks: dict[str, Any] = {}
        for part in self._running:
            checks.update(part.health())
        return checks

    async def stop(self) -> None:
        """Stop taking work, finish what was accepted, then close the parts in reverse order."""
        running = self._running
        for layer in reversed(LAYERS):
            if layer == "consumer":
                await self.ingest.stop()
                if self.relay is not None:
                    if not await self.relay.drain(within=5.0):
                        log.warning(
                            "outbox not drained at shutdown; the rest is published at next start"
                        )
                    await self.relay.stop()
            for part in reversed([p for p in running if p.layer == layer]):
                await part.stop()
        self._running = []
        if self.bus is not None:
            await self.bus.close()
        await self.pool.close()
