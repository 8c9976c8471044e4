"""The archive in MongoDB (``MONGODB_URL``), against a real MongoDB-wire server: FerretDB 1.24 on
SQLite (tests/support/ferretdb_server.py), one database per test. Webhooks and profiles are
archived there (and not in PostgreSQL), a redelivered event writes nothing twice, erasure leaves
no trace in MongoDB or the PostgreSQL archive, and an outage is retried until the consumer
catches up."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from crm.archive.part import GROUP, ArchiveConsumer
from crm.archive.stores import MongoArchive, PostgresArchive
from hub.app import Hub
from hub.bus import BusMessage
from hub.config import Config
from tests.conftest import ADMIN_TOKEN
from tests.crm.test_archive_postgres import (
    PHONE,
    SECRET,
    api_inbox,
    captured,
    logged_events,
    post_webhook,
    until,
)
from tests.support.api_channel import api_body
from tests.support.ferretdb_server import FerretDBServer

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
Mongo = AsyncDatabase[dict[str, Any]]


@pytest.fixture(scope="session")
def ferretdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FerretDBServer]:
    server = FerretDBServer(tmp_path_factory.mktemp("ferretdb"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mongo_database() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def hub_config(hub_config: Config, ferretdb: FerretDBServer, mongo_database: str) -> Config:
    return hub_config.replace(
        rate_limit_address=0.0,
        rate_limit_token=0.0,
        mongodb_url=ferretdb.url,
        mongodb_database=mongo_database,
    )


@pytest.fixture
async def mongo(ferretdb: FerretDBServer, mongo_database: str) -> AsyncIterator[Mongo]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(ferretdb.url, tz_aware=True)
    try:
        yield client[mongo_database]
    finally:
        await client.close()


async def everything(mongo: Mongo) -> list[dict[str, Any]]:
    return [d async for d in mongo.webhooks.find({})] + [d async for d in mongo.profiles.find({})]


async def test_webhook_and_profile_archived_in_mongodb(
    hub: Hub, client: Client, mongo: Mongo
) -> None:
    assert hub.config.mongodb_url
    made = await api_inbox(hub)
    body = api_body("m-1", identifier=PHONE, text=SECRET, name="Nimal")
    answer = await post_webhook(client, made, body)
    contact_id = answer["contact_id"]
    document = await until(lambda: mongo.webhooks.find_one({"message_id": answer["id"]}))
    assert document["body"] == body.decode()  # the provider's payload as it arrived
    assert document["sha256"] == hashlib.sha256(body).hexdigest()
    assert document["content_type"] == "application/json"
    assert (document["contact_id"], document["channel"], document["inbox_id"]) == (
        contact_id,
        "api",
        made.id,
    )
    assert document["_id"] == document["event_id"]

    company = await client.post("/api/v1/companies", json={"name": "Colombo Tea"}, headers=ADMIN)
    company_id = (await company.json())["id"]
    patched = await client.patch(
        f"/api/v1/contacts/{contact_id}",
        json={"attributes": {"city": "Colombo"}, "company_id": company_id},
        headers=ADMIN,
    )
    assert patched.status == 200
    profile = await until(
        lambda: mongo.profiles.find_one({"_id": contact_id, "company.name": "Colombo Tea"})
    )
    assert profile["name"] == "Nimal"
    assert profile["attributes"] == {"city": "Colombo"}
    assert profile["identities"] == [{"channel": "api", "address": PHONE}]
    assert profile["account_id"] == hub.account_id
    ready = await (await client.get("/readyz")).json()
    assert ready["checks"]["archive"] == "mongodb"
    # the documents went to MongoDB, not to the PostgreSQL archive
    assert await hub.pool.fetchval("SELECT count(*) FROM archived_webhooks") == 0
    assert await hub.pool.fetchval("SELECT count(*) FROM archived_profiles") == 0


async def test_a_redelivered_event_writes_nothing_twice_in_mongodb(
    hub: Hub,
    client: Client,
    mongo: Mongo,
    ferretdb: FerretDBServer,
    mongo_database: str,
    webhook_events: list[BusMessage],
) -> None:
    made = await api_inbox(hub)
    await post_webhook(client, made, api_body("m-1", identifier=PHONE, text="hi"))
    await until(lambda: mongo.webhooks.find_one({}))
    await until(lambda: mongo.profiles.find_one({}))
    before = await everything(mongo)
    assert len(before) == 2
    batch = [*await captured(webhook_events, 1), *await logged_events(hub, "contact.created")]
    assert len(batch) == 2
    store = MongoArchive(ferretdb.url, mongo_database)
    try:
        archive = ArchiveConsumer(store, hub.pool)
        await archive.handle(batch)
        await archive.handle(batch)  # delivered twice more
    finally:
        await store.close()
    assert await everything(mongo) == before


async def test_erasure_leaves_no_trace_in_mongodb_or_the_postgresql_archive(
    hub: Hub, client: Client, mongo: Mongo, webhook_events: list[BusMessage]
) -> None:
    made = await api_inbox(hub)
    first = await post_webhook(client, made, api_body("m-1", identifier=PHONE, text=SECRET))
    contact_id = first["contact_id"]
    await post_webhook(client, made, api_body("m-2", identifier=PHONE, text="second words"))
    other = await post_webhook(client, made, api_body("m-3", identifier="+94770000001"))
    await until(lambda: _count(mongo, 3, 2))
    # from before MONGODB_URL was set: a document of the person in the PostgreSQL archive
    await hub.pool.execute(
        """INSERT INTO archived_profiles (contact_id, account_id, event_id, document)
           VALUES ($1, $2, 'old', $3)""",
        contact_id,
        hub.account_id,
        {"name": "Nimal", "identities": [{"channel": "api", "address": PHONE}]},
    )
    needles = [SECRET, PHONE, "second words"]
    text = orjson.dumps(await everything(mongo), default=str).decode()
    assert all(n in text for n in needles)  # JSON escapes nothing in these
    late = await captured(webhook_events, 3)

    erased = await client.post(f"/api/v1/contacts/{contact_id}/erase", headers=ADMIN)
    assert erased.status == 200, await erased.text()
    await until(lambda: _count(mongo, 1, 1))  # the consumer saw contact.erased
    left = await everything(mongo)
    assert {d["contact_id"] for d in left} == {other["contact_id"]}
    # the person's message.webhook still on the bus reaches the archive after the erasure
    store = MongoArchive(hub.config.mongodb_url or "", hub.config.mongodb_database)
    try:
        await ArchiveConsumer(store, hub.pool, [PostgresArchive(hub.pool)]).handle(late)
    finally:
        await store.close()
    left = await everything(mongo)
    assert {d["contact_id"] for d in left} == {other["contact_id"]}
    text = orjson.dumps(left, default=str).decode()
    assert not [n for n in needles if n in text]
    for table in ("archived_webhooks", "archived_profiles"):
        found = await hub.pool.fetchval(
            f"SELECT count(*) FROM {table} x WHERE x::text LIKE ANY($1::text[])",
            [f"%{n}%" for n in needles],
        )
        assert found == 0, table


async def _count(mongo: Mongo, webhooks: int, profiles: int) -> bool:
    return (
        await mongo.webhooks.count_documents({}) == webhooks
        and await mongo.profiles.count_documents({}) == profiles
    )


def archive_lag(hub: Hub) -> int:
    assert hub.bus is not None
    return sum(n for (group, _), n in hub.bus.lag().items() if group == GROUP)


async def test_mongodb_down_the_consumer_retries_and_catches_up(
    hub: Hub, client: Client, mongo: Mongo, ferretdb: FerretDBServer
) -> None:
    made = await api_inbox(hub)
    first = await post_webhook(client, made, api_body("m-1", identifier=PHONE))
    await until(lambda: mongo.webhooks.find_one({"message_id": first["id"]}))
    ferretdb.stop()
    try:
        during = [
            await post_webhook(client, made, api_body(f"m-{n}", identifier=PHONE, text=f"t{n}"))
            for n in (2, 3)
        ]  # the gateway answers: archiving is off the hot path

        async def behind() -> bool:
            return archive_lag(hub) > 0

        await until(behind)
        # several failed attempts later (each waits 1 s for a server), still there, not skipped
        await asyncio.sleep(3)
        assert archive_lag(hub) > 0
    finally:
        ferretdb.start()  # the same port and data: MongoDB is back

    async def caught_up() -> bool:
        wanted = {"message_id": {"$in": [m["id"] for m in during]}}
        found = await mongo.webhooks.count_documents(wanted)
        return found == 2 and archive_lag(hub) == 0

    await until(caught_up)
    assert await mongo.webhooks.count_documents({}) == 3
