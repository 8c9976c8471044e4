"""The two places the archive can live, behind one small interface.

:class:`PostgresArchive` writes JSONB rows into ``archived_webhooks`` and ``archived_profiles``
(migration 0037): the embedded default, nothing more to run. :class:`MongoArchive` writes the same
documents into MongoDB (collections ``webhooks`` and ``profiles``) through PyMongo's asyncio API,
``AsyncMongoClient`` (the successor of Motor, which its maintainers have deprecated). Every write
is an upsert on the document's key (event id, contact id), so a replayed event changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
from pymongo import AsyncMongoClient, ReplaceOne
from pymongo.errors import ConnectionFailure

from crm.archive.documents import Archived

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

#: errors of a store that is down or unreachable: the bus retries the batch until it is back
TRANSIENT: tuple[type[BaseException], ...] = (ConnectionFailure,)


class ArchiveStore(Protocol):
    kind: str

    async def ready(self) -> None: ...

    async def put_webhooks(self, documents: Sequence[Archived]) -> None: ...

    async def put_profiles(self, documents: Sequence[Archived]) -> None: ...

    async def drop_profiles(self, account_id: str, contact_ids: Sequence[str]) -> None: ...

    async def erase_contacts(self, account_id: str, contact_ids: Sequence[str]) -> int:
        """Remove everything archived of these contacts; how many documents went."""
        ...

    async def close(self) -> None: ...


class PostgresArchive:
    """Nothing is written for a contact already erased (the erasure empties these tables in its
    own transaction; a write racing it would otherwise outlive it)."""

    kind = "postgresql"

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def ready(self) -> None:
        return None

    async def put_webhooks(self, documents: Sequence[Archived]) -> None:
        """One statement for the batch (it was one per webhook: a thousand executions a second
        at 1,000 msgs/s); a document twice in it (a redelivery) is written once, the later."""
        rows = list({d.key: d for d in documents}.values())
        await self._pool.execute(
            """INSERT INTO archived_webhooks (event_id, account_id, contact_id, message_id,
                                              inbox_id, channel, received_at, document)
               SELECT w.* FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                      $5::text[], $6::text[], $7::timestamptz[], $8::jsonb[])
                               AS w(event_id, account_id, contact_id, message_id, inbox_id,
                                    channel, received_at, document)
                WHERE NOT EXISTS (SELECT 1 FROM contacts c
                                   WHERE c.id = w.contact_id AND c.erased_at IS NOT NULL)
               ON CONFLICT (event_id) DO UPDATE SET document = EXCLUDED.document""",
            [d.key for d in rows],
            [d.account_id for d in rows],
            [d.contact_id for d in rows],
            [d.document["message_id"] for d in rows],
            [d.document["inbox_id"] for d in rows],
            [d.document["channel"] for d in rows],
            [d.document["received_at"] for d in rows],
            [d.document for d in rows],
        )

    async def put_profiles(self, documents: Sequence[Archived]) -> None:
        await self._pool.executemany(
            """INSERT INTO archived_profiles (contact_id, account_id, event_id, document)
               SELECT $1, $2, $3, $4
                WHERE NOT EXISTS (SELECT 1 FROM contacts
                                   WHERE id = $1 AND erased_at IS NOT NULL)
               ON CONFLICT (contact_id) DO UPDATE
                  SET event_id = EXCLUDED.event_id, document = EXCLUDED.document,
                      archived_at = now()""",
            [(d.key, d.account_id, d.event_id, d.document) for d in documents],
        )

    async def drop_profiles(self, account_id: str, contact_ids: Sequence[str]) -> None:
        await self._pool.execute(
            "DELETE FROM archived_profiles WHERE account_id = $1 AND contact_id = ANY($2::text[])",
            account_id,
            list(contact_ids),
        )

    async def erase_contacts(self, account_id: str, contact_ids: Sequence[str]) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            webhooks = await conn.fetchval(
                """WITH d AS (DELETE FROM archived_webhooks
                               WHERE account_id = $1 AND contact_id = ANY($2::text[])
                              RETURNING 1)
                   SELECT count(*) FROM d""",
                account_id,
                list(contact_ids),
            )
            profiles = await conn.fetchval(
                """WITH d AS (DELETE FROM archived_profiles
                               WHERE account_id = $1 AND contact_id = ANY($2::text[])
                              RETURNING 1)
                   SELECT count(*) FROM d""",
                account_id,
                list(contact_ids),
            )
        return int(webhooks) + int(profiles)

    async def close(self) -> None:
        return None


def _mongo_id(document: Archived) -> dict[str, Any]:
    return {"_id": document.key, **document.document}


class MongoArchive:
    kind = "mongodb"

    def __init__(self, url: str, database: str) -> None:
        options: dict[str, Any] = {"tz_aware": True}
        if "serverselectiontimeoutms" not in url.lower():  # the URL's own setting wins
            options["serverSelectionTimeoutMS"] = 5000
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, **options)
        self._db: AsyncDatabase[dict[str, Any]] = self._client[database]

    async def ready(self) -> None:
        """The indexes erasure and per-account reads use (creating an existing one is a no-op)."""
        await self._db.webhooks.create_index([("account_id", 1), ("contact_id", 1)])
        await self._db.profiles.create_index([("account_id", 1)])

    async def put_webhooks(self, documents: Sequence[Archived]) -> None:
        if documents:
            await self._db.webhooks.bulk_write(
                [ReplaceOne({"_id": d.key}, _mongo_id(d), upsert=True) for d in documents],
                ordered=False,
            )

    async def put_profiles(self, documents: Sequence[Archived]) -> None:
        if documents:
            await self._db.profiles.bulk_write(
                [ReplaceOne({"_id": d.key}, _mongo_id(d), upsert=True) for d in documents],
                ordered=False,
            )

    async def drop_profiles(self, account_id: str, contact_ids: Sequence[str]) -> None:
        await self._db.profiles.delete_many(
            {"account_id": account_id, "_id": {"$in": list(contact_ids)}}
        )

    async def erase_contacts(self, account_id: str, contact_ids: Sequence[str]) -> int:
        ids = list(contact_ids)
        webhooks = await self._db.webhooks.delete_many(
            {"account_id": account_id, "contact_id": {"$in": ids}}
        )
        profiles = await self._db.profiles.delete_many(
            {"account_id": account_id, "_id": {"$in": ids}}
        )
        return webhooks.deleted_count + profiles.deleted_count

    async def close(self) -> None:
        await self._client.close()
