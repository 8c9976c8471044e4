"""The archive in its embedded store (no ``MONGODB_URL``): PostgreSQL JSONB tables fed by the
``archive`` consumer with the raw payload of every inbound webhook and each contact's profile
document, idempotent on redelivery, emptied by erasure in the erasure's own transaction."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from crm.archive.part import ArchiveConsumer
from crm.archive.stores import ArchiveStore, PostgresArchive
from hub.actions.setup import CreatedInbox, create_inbox
from hub.app import Hub
from hub.bus import BusMessage
from hub.config import Config
from tests.conftest import ADMIN_TOKEN
from tests.support.api_channel import api_body, signed_headers

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SECRET = "my card number is 4111 1111"
PHONE = "+94771234567"


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    return hub_config.replace(rate_limit_address=0.0, rate_limit_token=0.0)


async def api_inbox(hub: Hub) -> CreatedInbox:
    async with hub.pool.acquire() as conn:
        return await create_inbox(conn, hub.box, account_id=hub.account_id, channel="api", name="S")


async def post_webhook(client: Client, made: CreatedInbox, body: bytes) -> dict[str, Any]:
    """A signed API-channel webhook through the gateway, as the customer's system sends it."""
    response = await client.post(
        f"/webhooks/api/{made.id}",
        data=body,
        headers=signed_headers(made.secrets["signing_secret"], body),
    )
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = (await response.json())["messages"][0]
    return answer


async def until(check: Callable[[], Awaitable[Any]]) -> Any:
    """Poll ``check`` until it answers something true: the consumer caught up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not (found := await check()):
        assert loop.time() < deadline, "the archive consumer did not catch up"
        await asyncio.sleep(0.05)
    return found


async def logged_events(hub: Hub, *types: str) -> list[BusMessage]:
    """The events of these types as the bus carried them (from the journal's event_log)."""
    rows = await hub.pool.fetch(
        "SELECT event::text AS e FROM event_log WHERE type = ANY($1::text[]) ORDER BY id",
        list(types),
    )
    return [BusMessage("t", "k", r["e"].encode(), 0, n, {}) for n, r in enumerate(rows)]


async def captured(seen: list[BusMessage], n: int) -> list[BusMessage]:
    async def enough() -> bool:
        return len(seen) >= n

    await until(enough)
    assert len(seen) == n
    return list(seen)


def consumer(hub: Hub, store: ArchiveStore) -> ArchiveConsumer:
    return ArchiveConsumer(store, hub.pool)


async def test_webhook_and_profile_archived_in_postgresql(hub: Hub, client: Client) -> None:
    made = await api_inbox(hub)
    body = api_body("m-1", identifier=PHONE, text=SECRET, name="Nimal")
    answer = await post_webhook(client, made, body)
    contact_id = answer["contact_id"]
    row = await until(
        lambda: hub.pool.fetchrow(
            "SELECT * FROM archived_webhooks WHERE message_id = $1", answer["id"]
        )
    )
    document = row["document"]
    assert document["body"] == body.decode()  # the provider's payload, byte for byte
    assert document["content_type"] == "application/json"
    assert document["sha256"] == hashlib.sha256(body).hexdigest()
    assert document["size"] == len(body)
    assert (row["contact_id"], row["channel"], row["inbox_id"]) == (contact_id, "api", made.id)
    assert document["provider_message_id"] == "m-1"

    company = await client.post("/api/v1/companies", json={"name": "Colombo Tea"}, headers=ADMIN)
    company_id = (await company.json())["id"]
    patched = await client.patch(
        f"/api/v1/contacts/{contact_id}",
        json={"attributes": {"city": "Colombo"}, "company_id": company_id},
        headers=ADMIN,
    )
    assert patched.status == 200
    profile = await until(
        lambda: hub.pool.fetchval(
            """SELECT document FROM archived_profiles
                WHERE contact_id = $1 AND document -> 'company' ->> 'name' = 'Colombo Tea'""",
            contact_id,
        )
    )
    assert profile["name"] == "Nimal"
    assert profile["attributes"] == {"city": "Colombo"}
    assert profile["identities"] == [{"channel": "api", "address": PHONE}]
    assert profile["company"]["id"] == company_id
    ready = await (await client.get("/readyz")).json()
    assert ready["checks"]["archive"] == "postgresql" and "archive_lag" in ready["checks"]


async def test_a_redelivered_event_writes_nothing_twice(
    hub: Hub, client: Client, webhook_events: list[BusMessage]
) -> None:
    made = await api_inbox(hub)
    answer = await post_webhook(client, made, api_body("m-1", identifier=PHONE, text="hi"))
    await until(lambda: hub.pool.fetchval("SELECT count(*) = 1 FROM archived_profiles"))
    await until(lambda: hub.pool.fetchval("SELECT count(*) = 1 FROM archived_webhooks"))
    before = [
        [dict(r) for r in await hub.pool.fetch(f"SELECT * FROM {t} ORDER BY 1")]
        for t in ("archived_webhooks", "archived_profiles")
    ]
    batch = [*await captured(webhook_events, 1), *await logged_events(hub, "contact.created")]
    assert len(batch) == 2
    archive = consumer(hub, PostgresArchive(hub.pool))
    await archive.handle(batch)
    await archive.handle([*batch, *batch])  # and twice within one batch
    after = [
        [dict(r) for r in await hub.pool.fetch(f"SELECT * FROM {t} ORDER BY 1")]
        for t in ("archived_webhooks", "archived_profiles")
    ]
    for rows in (*before, *after):
        for row in rows:
            row.pop("archived_at", None)  # when it was last written
    assert after == before
    assert after[0][0]["message_id"] == answer["id"]


async def test_erasure_empties_the_postgresql_archive_at_once(
    hub: Hub, client: Client, webhook_events: list[BusMessage]
) -> None:
    made = await api_inbox(hub)
    first = await post_webhook(client, made, api_body("m-1", identifier=PHONE, text=SECRET))
    await post_webhook(client, made, api_body("m-2", identifier=PHONE, text="second"))
    other = await post_webhook(client, made, api_body("m-3", identifier="+94770000001"))
    contact_id = first["contact_id"]
    await until(lambda: hub.pool.fetchval("SELECT count(*) = 3 FROM archived_webhooks"))
    await until(lambda: hub.pool.fetchval("SELECT count(*) = 2 FROM archived_profiles"))
    late = await captured(webhook_events, 3)
    # the raw webhooks travel on their own topic: not in the event log agents' timelines and
    # outgoing webhooks read, nor in the realtime log their sockets replay
    for table in ("event_log", "realtime_events"):
        assert not await hub.pool.fetchval(
            f"SELECT count(*) FROM {table} WHERE event::text LIKE '%provider_payload%'"
        ), table

    erased = await client.post(f"/api/v1/contacts/{contact_id}/erase", headers=ADMIN)
    assert erased.status == 200, await erased.text()
    assert (await erased.json())["archived_documents"] == 3  # two webhooks and the profile
    left = await hub.pool.fetch("SELECT contact_id, document FROM archived_webhooks")
    assert [r["contact_id"] for r in left] == [other["contact_id"]]  # only the other person's
    assert await hub.pool.fetchval("SELECT array_agg(contact_id) FROM archived_profiles") == [
        other["contact_id"]
    ]
    # the person's message.webhook still on the bus, reaching the archive after the erasure
    await consumer(hub, PostgresArchive(hub.pool)).handle(late)
    rows = await hub.pool.fetch("SELECT document FROM archived_webhooks")
    assert len(rows) == 1
    for needle in (SECRET, PHONE, "second"):
        assert needle not in orjson.dumps([r["document"] for r in rows]).decode()
    # and the message text in the logged message.received is blanked
    assert not await hub.pool.fetchval(
        "SELECT count(*) FROM event_log WHERE event::text LIKE $1", f"%{SECRET}%"
    )


async def test_an_erased_webhook_event_still_decodes_and_archives_nothing(hub: Hub) -> None:
    """``hub_erase_event`` blanks ``provider_payload`` in an outbox row not yet relayed: the
    archive still decodes the event, and writes nothing for it."""
    from hub.events import Actor, ActorKind, encode_event, make_event
    from hub.events.types import MessageWebhook, ProviderPayload

    event = make_event(
        MessageWebhook(
            message_id="m-1",
            inbox_id="i-1",
            contact_id="c-1",
            channel="api",
            provider_message_id="p-1",
            provider_payload=ProviderPayload(
                content_type="application/json", body=SECRET, size=len(SECRET), sha256="x"
            ),
        ),
        account_id=hub.account_id,
        conversation_id="conv-1",
        actor=Actor(ActorKind.CONTACT, "c-1"),
    )
    blanked = await hub.pool.fetchval(
        "SELECT hub_erase_event($1::text::jsonb)::text", encode_event(event).decode()
    )
    assert SECRET not in blanked and '"provider_payload": null' in blanked
    archive = consumer(hub, PostgresArchive(hub.pool))
    await archive.handle([BusMessage("t", "k", blanked.encode(), 0, 0, {})])
    assert await hub.pool.fetchval("SELECT count(*) FROM archived_webhooks") == 0
    await archive.handle([BusMessage("t", "k", encode_event(event), 0, 1, {})])  # not blanked
    assert await hub.pool.fetchval("SELECT count(*) FROM archived_webhooks") == 1
