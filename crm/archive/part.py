"""The archive consumer: its own group (``archive``) on the webhooks and contacts topics.

- ``message.webhook`` (written by ingest with each ``message.received`` that came by webhook, on
  the ``webhooks`` topic only the archive reads): the raw provider payload, one document per
  event id;
- ``contact.created`` / ``updated`` / ``merged``: the contact's full profile document, read from
  PostgreSQL at that moment (a contact merged away loses its own document; its survivor's lists
  it);
- ``contact.erased``: every document of the person (and of the contacts merged into them) goes,
  from the configured store and from the PostgreSQL archive both.

Off the hot path and idempotent on event id: documents are upserted on their key, so a
redelivered batch rewrites the same documents. A store that is down (MongoDB unreachable) is a
transient error: the bus retries the batch without limit and the group catches up from where it
stopped; ``/readyz`` shows the group's lag.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from crm.archive.documents import Archived, profile_documents, webhook_document
from crm.archive.stores import TRANSIENT, ArchiveStore, MongoArchive, PostgresArchive
from hub.bus import Bus, BusMessage, ConsumerOptions, Subscription
from hub.consumers.stream import StreamConsumer
from hub.contracts.part import WORKERS, Layer
from hub.events.envelope import Event, Payload, UnknownEventType, decode_event
from hub.events.types import (
    CONTACTS,
    WEBHOOKS,
    ContactCreated,
    ContactErased,
    ContactMerged,
    ContactUpdated,
    MessageWebhook,
)

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger(__name__)

GROUP = "archive"


class ArchiveConsumer:
    def __init__(
        self, store: ArchiveStore, pool: asyncpg.Pool[Any], also_erase: Sequence[ArchiveStore] = ()
    ) -> None:
        self._store = store
        self._pool = pool
        #: stores that may still hold documents from before (the PostgreSQL archive once
        #: MongoDB is set): erasure clears them too
        self._also_erase = also_erase

    async def subscribe(self, bus: Bus, options: ConsumerOptions) -> list[Subscription]:
        options = dataclasses.replace(options, transient=(*options.transient, *TRANSIENT))
        return [
            await bus.subscribe(WEBHOOKS, GROUP, self.handle, options),
            await bus.subscribe(CONTACTS, GROUP, self.handle, options),
        ]

    async def handle(self, batch: Sequence[BusMessage]) -> None:
        webhooks: list[Archived] = []
        profiles: dict[tuple[str, str], str] = {}  # (account, contact) -> the latest event id
        merged_away: list[tuple[str, str]] = []
        erased: list[tuple[str, str]] = []
        for message in batch:
            try:
                event: Event[Payload] = decode_event(message.value)
            except UnknownEventType:  # a newer producer's type: nothing to archive here
                continue
            p = event.payload
            if isinstance(p, MessageWebhook):
                document = webhook_document(event)  # type: ignore[arg-type]
                if document is not None:
                    webhooks.append(document)
            elif isinstance(p, ContactCreated | ContactUpdated | ContactMerged):
                profiles[(event.account_id, p.contact_id)] = event.id
                if isinstance(p, ContactMerged):
                    merged_away.append((event.account_id, p.merged_contact_id))
            elif isinstance(p, ContactErased):
                erased.append((event.account_id, p.contact_id))
        if webhooks:
            await self._put_webhooks(webhooks)
        for account_id in {a for a, _ in profiles}:
            wanted = {c: e for (a, c), e in profiles.items() if a == account_id}
            keep, drop = await profile_documents(self._pool, account_id, list(wanted), wanted)
            if keep:
                await self._store.put_profiles(keep)
            if drop:
                await self._store.drop_profiles(account_id, drop)
        for account_id, contact_id in merged_away:
            await self._store.drop_profiles(account_id, [contact_id])
        for account_id, contact_id in erased:  # last: it also removes what this batch wrote
            await self._erase(account_id, contact_id)

    async def _put_webhooks(self, webhooks: list[Archived]) -> None:
        """Not for a contact already erased (the erasure can overtake the message on the other
        topic); checked again after the write, for an erasure that landed meanwhile."""
        gone = await self._erased(webhooks)
        keep = [w for w in webhooks if w.contact_id not in gone]
        if not keep:
            return
        await self._store.put_webhooks(keep)
        gone = await self._erased(keep)
        for account_id, contact_id in sorted({(w.account_id, w.contact_id) for w in keep}):
            if contact_id in gone:
                await self._erase(account_id, contact_id)

    async def _erased(self, documents: Sequence[Archived]) -> set[str]:
        rows = await self._pool.fetch(
            "SELECT id FROM contacts WHERE id = ANY($1::text[]) AND erased_at IS NOT NULL",
            sorted({d.contact_id for d in documents}),
        )
        return {r["id"] for r in rows}

    async def _erase(self, account_id: str, contact_id: str) -> None:
        rows = await self._pool.fetch(
            "SELECT id FROM contacts WHERE merged_into = $1 AND account_id = $2",
            contact_id,
            account_id,
        )
        ids = [contact_id, *(r["id"] for r in rows)]
        removed = await self._store.erase_contacts(account_id, ids)
        for store in self._also_erase:
            removed += await store.erase_contacts(account_id, ids)
        log.info("archive: erased %d documents of contact %s", removed, contact_id)


class ArchivePart:
    name = "archive"
    layer: Layer = "consumer"
    roles = WORKERS

    def __init__(self) -> None:
        self.store: ArchiveStore | None = None
        self.state = "off"
        self._consumer: StreamConsumer | None = None
        self._hub: Hub | None = None

    async def start(self, hub: Hub) -> None:
        config = hub.config
        self._hub = hub
        if not config.archive:
            self.state = "off (HUB_ARCHIVE)"
            return
        if hub.bus is None:
            return
        embedded = PostgresArchive(hub.pool)
        store: ArchiveStore = embedded
        also: list[ArchiveStore] = []
        if config.mongodb_url:
            store = MongoArchive(config.mongodb_url, config.mongodb_database)
            also = [embedded]
        self.store = store
        self.state = store.kind
        try:
            await store.ready()
        except TRANSIENT as exc:  # the consumer retries its batches until the store is back
            log.warning("archive store unavailable at start: %s", exc)
        self._consumer = StreamConsumer(
            GROUP, lambda h: ArchiveConsumer(store, h.pool, also), max_batch=500, linger=0.2
        )
        await self._consumer.start(hub)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self.store is not None:
            await self.store.close()
            self.store = None

    def lag(self) -> int:
        if self._hub is None or self._hub.bus is None or self._consumer is None:
            return 0
        return sum(n for (group, _), n in self._hub.bus.lag().items() if group == GROUP)

    def health(self) -> Mapping[str, Any]:
        if self.store is None:
            return {"archive": self.state}
        return {"archive": self.state, "archive_lag": self.lag()}


def archive_part() -> ArchivePart:
    return ArchivePart()
