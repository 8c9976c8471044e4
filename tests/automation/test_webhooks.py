"""Outgoing webhooks end to end: inbound messages through the real hub reach a local receiver
signed, once each and in order, through failures and restarts; dead letters can be redelivered;
private addresses are refused unless allowed."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import orjson
import pytest

from automation import signing
from hub.app import Hub
from hub.config import Config
from tests.automation.conftest import ADMIN, Receiver, running, subscribe
from tests.support.api_channel import ApiInbox, api_body

pytestmark = pytest.mark.postgres


async def test_a_receiver_that_fails_three_times_gets_each_event_once_in_order(
    hub: Hub, server: str, receiver: Receiver
) -> None:
    receiver.fail_first = 3
    async with aiohttp.ClientSession() as http:
        made = await subscribe(
            http, server, receiver.url, ["conversation.created", "message.received"]
        )
        inbox = await ApiInbox.create(hub, server)
        for i in range(4):
            await inbox.post(http, api_body(f"m-{i}", text=f"hello {i}"))
    await receiver.until(5)  # conversation.created and four messages
    await asyncio.sleep(0.3)  # nothing more arrives
    assert len(receiver.hits) == 3 + 5
    assert [h.status for h in receiver.hits[:3]] == [500, 500, 500]

    accepted = receiver.accepted
    event_ids = [h.headers[signing.EVENT_ID] for h in accepted]
    delivery_ids = [h.headers[signing.DELIVERY_ID] for h in accepted]
    assert len(set(event_ids)) == 5 and len(set(delivery_ids)) == 5
    # the failed tries were the first delivery, sent again (same delivery id)
    assert {h.headers[signing.DELIVERY_ID] for h in receiver.hits[:3]} == {delivery_ids[0]}

    logged = await hub.pool.fetch(
        """SELECT id, type FROM event_log
            WHERE type IN ('conversation.created', 'message.received') ORDER BY id"""
    )
    assert event_ids == [r["id"] for r in logged]  # the conversation's order
    texts = [
        orjson.loads(h.body)["payload"].get("content")
        for h in accepted
        if h.headers[signing.EVENT_TYPE] == "message.received"
    ]
    assert texts == [f"hello {i}" for i in range(4)]
    for hit in accepted:
        assert signing.verify(
            made["secret"], hit.headers[signing.TIMESTAMP], hit.body, hit.headers[signing.SIGNATURE]
        )
        assert not signing.verify(
            "whsec_wrong", hit.headers[signing.TIMESTAMP], hit.body, hit.headers[signing.SIGNATURE]
        )
        assert orjson.loads(hit.body)["id"] == hit.headers[signing.EVENT_ID]
    states = await hub.pool.fetch("SELECT state, attempts FROM webhook_deliveries ORDER BY seq")
    assert [r["state"] for r in states] == ["delivered"] * 5
    assert [r["attempts"] for r in states] == [4, 1, 1, 1, 1]
    # the secret is stored sealed, never in clear
    stored = await hub.pool.fetchval("SELECT secret FROM webhook_subscriptions")
    assert made["secret"].encode() not in bytes(stored)


async def test_a_hanging_receiver_does_not_slow_ingest(
    hub: Hub, server: str, receiver: Receiver
) -> None:
    receiver.hang = 60.0
    async with aiohttp.ClientSession() as http:
        await subscribe(http, server, receiver.url, ["message.received"])
        inbox = await ApiInbox.create(hub, server)
        await inbox.post(http, api_body("first"))
        await asyncio.wait_for(receiver.started.wait(), 10)  # the sender is stuck on it
        async with asyncio.timeout(20):  # far below the receiver's hang
            for i in range(20):
                await inbox.post(http, api_body(f"m-{i}", identifier=f"+9477200{i:04d}"))
            while await hub.pool.fetchval("SELECT count(*) FROM webhook_deliveries") < 21:
                await asyncio.sleep(0.05)
    assert await hub.pool.fetchval("SELECT count(*) FROM messages") == 21


async def test_dead_letters_are_listed_and_redelivered(
    hub_config: Config, receiver: Receiver
) -> None:
    receiver.always_fail = True
    config = dataclasses.replace(hub_config, webhook_retry_hours=1 / 3600)
    async with running(config) as (hub, server), aiohttp.ClientSession() as http:
        made = await subscribe(http, server, receiver.url, ["message.received"])
        inbox = await ApiInbox.create(hub, server)
        await inbox.post(http, api_body("m-1"))
        deliveries = f"{server}/api/v1/webhooks/{made['id']}/deliveries"
        async with asyncio.timeout(20):
            while True:
                async with http.get(deliveries, params={"state": "dead"}, headers=ADMIN) as r:
                    dead = (await r.json())["data"]
                if dead:
                    break
                await asyncio.sleep(0.1)
        [letter] = dead
        assert letter["attempts"] >= 2 and letter["last_status"] == 500
        assert letter["last_error"] == "not now"
        tries = len(receiver.hits)
        await asyncio.sleep(0.3)
        assert len(receiver.hits) == tries  # dead: not tried any more

        receiver.always_fail = False
        redeliver = f"{deliveries}/{letter['id']}/redeliver"
        async with http.post(redeliver, headers=ADMIN) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["state"] == "pending"
        await receiver.until(1)
        assert receiver.accepted[0].headers[signing.DELIVERY_ID] == letter["id"]
        async with asyncio.timeout(10):
            while True:
                async with http.get(deliveries, headers=ADMIN) as r:
                    [item] = (await r.json())["data"]
                if item["state"] == "delivered":
                    break
                await asyncio.sleep(0.05)
        async with http.post(redeliver, headers=ADMIN) as r:
            assert r.status == 200  # a delivered one may be sent again too
        audit = await hub.pool.fetch(
            "SELECT action FROM audit_log WHERE object_type = 'webhook' ORDER BY id"
        )
        assert [a["action"] for a in audit] == [
            "webhook.created",
            "webhook.redelivered",
            "webhook.redelivered",
        ]


async def test_deliveries_survive_a_restart(hub_config: Config, receiver: Receiver) -> None:
    """Recorded while the receiver is down and the hub stops: the next start delivers them."""
    receiver.always_fail = True
    config = dataclasses.replace(hub_config, webhook_retry_base_ms=200)
    async with running(config) as (first, server), aiohttp.ClientSession() as http:
        made = await subscribe(http, server, receiver.url, ["message.received"])
        inbox = await ApiInbox.create(first, server)
        for i in range(3):
            await inbox.post(http, api_body(f"m-{i}"))
        await asyncio.wait_for(receiver.arrived.wait(), 10)
    assert not receiver.accepted

    receiver.always_fail = False
    async with running(config):
        await receiver.until(3)
        await asyncio.sleep(0.3)
    ids = [h.headers[signing.EVENT_ID] for h in receiver.accepted]
    assert len(ids) == 3 and ids == sorted(ids)
    for hit in receiver.accepted:
        headers = hit.headers
        assert signing.verify(
            made["secret"], headers[signing.TIMESTAMP], hit.body, headers[signing.SIGNATURE]
        )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://localhost/hook",
        "ftp://93.184.215.14/hook",
        "http://user:pw@93.184.215.14/hook",
    ],
)
async def test_private_addresses_are_refused_unless_allowed(hub_config: Config, url: str) -> None:
    config = dataclasses.replace(hub_config, webhook_allow_private=False)
    async with running(config) as (hub, server), aiohttp.ClientSession() as http:
        async with http.post(
            f"{server}/api/v1/webhooks",
            json={"name": "x", "url": url, "event_types": ["message.received"]},
            headers=ADMIN,
        ) as response:
            assert response.status == 422, await response.text()
            assert (await response.json())["error"]["code"] == "url_refused"
        assert await hub.pool.fetchval("SELECT count(*) FROM webhook_subscriptions") == 0


async def test_raw_provider_webhooks_cannot_be_subscribed_to(hub_config: Config) -> None:
    """``message.webhook`` (the raw provider payload, on the archive's own topic) is not sent on."""
    async with running(hub_config) as (hub, server), aiohttp.ClientSession() as http:
        async with http.post(
            f"{server}/api/v1/webhooks",
            json={
                "name": "x",
                "url": "https://93.184.215.14/hook",
                "event_types": ["message.received", "message.webhook"],
            },
            headers=ADMIN,
        ) as response:
            assert response.status == 422, await response.text()
            error = (await response.json())["error"]
            assert error["code"] == "unknown_event_types"
            assert error["details"]["types"] == ["message.webhook"]
        assert await hub.pool.fetchval("SELECT count(*) FROM webhook_subscriptions") == 0


async def test_a_send_cut_off_by_a_stop_goes_out_at_once_after_the_restart(
    hub_config: Config, receiver: Receiver
) -> None:
    """A send in flight when the hub stops held its lease (30 s) into the next start."""
    receiver.hang = 60
    async with running(hub_config) as (first, server), aiohttp.ClientSession() as http:
        await subscribe(http, server, receiver.url, ["message.received"])
        inbox = await ApiInbox.create(first, server)
        await inbox.post(http, api_body("m-0"))
        await asyncio.wait_for(receiver.started.wait(), 10)
    receiver.hang = 0
    async with running(hub_config):
        await receiver.until(1, within=10)
    assert len(receiver.accepted) == 1
