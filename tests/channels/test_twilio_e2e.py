"""End to end over real HTTP: a signed Twilio SMS webhook becomes a contact, a conversation and a
message in PostgreSQL, travels the bus, and reaches an agent socket; the agent's reply goes out
through the twilio SDK to the provider mock; Twilio's status callback reaches the agent as a
status change. Plus the failure paths: a duplicate webhook, a forged one, media that fails twice
before it arrives, and a 429 on send."""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp
import pytest

from hub.app import Hub
from tests.channels.conformance import AUTH, count, events_of, statuses, wait_for_status
from tests.channels.twilio_support import (
    ACCOUNT_SID,
    CUSTOMER,
    FROM_NUMBER,
    fixture,
    signed_request,
    twilio_api,
    twilio_inbox,
    with_sid,
)
from tests.realtime.agents import Agent
from tests.support.provider_mock import TOO_MANY_REQUESTS, ProviderMock, twilio_error

pytestmark = pytest.mark.postgres


async def webhook(
    http: aiohttp.ClientSession, server: str, inbox: str, pairs: list[tuple[str, str]]
) -> tuple[int, str]:
    path, body, headers = signed_request(inbox, pairs)
    async with http.post(server + path, data=body, headers=headers) as response:
        return response.status, await response.text()


async def test_sms_in_reply_out_status_back(
    hub: Hub, server: str, mock: ProviderMock, agent: Agent, http: aiohttp.ClientSession
) -> None:
    inbox = await twilio_inbox(hub, mock)
    status, text = await webhook(http, server, inbox, fixture("sms_inbound"))
    assert status == 200 and "<Response/>" in text

    row = await hub.pool.fetchrow(
        """SELECT m.id, m.conversation_id, c.contact_id, ci.address
             FROM messages m JOIN conversations c ON c.id = m.conversation_id
             JOIN contact_identities ci ON ci.contact_id = c.contact_id AND ci.channel = 'phone'"""
    )
    assert row is not None and row["address"] == CUSTOMER
    await agent.wait_until(lambda: bool(events_of(agent, "message.received")))
    received = events_of(agent, "message.received")[0]
    assert received["payload"]["message_id"] == row["id"]
    assert received["payload"]["content"] == "Hello, is my order on its way?"

    async with http.post(
        f"{server}/api/v1/conversations/{row['conversation_id']}/messages",
        json={"content": "It ships today 📦"},
        headers=AUTH,
    ) as response:
        assert response.status == 201
        reply_id = (await response.json())["id"]
    sent = await wait_for_status(hub, reply_id, "sent")
    call = mock.of("twilio.messages")[0]
    assert call.form["To"] == CUSTOMER and call.form["From"] == FROM_NUMBER
    assert call.form["Body"] == "It ships today 📦"
    assert call.headers["User-Agent"].startswith("twilio-python/")

    await agent.wait_until(lambda: statuses(agent, reply_id) == ["sent"])
    callback = with_sid("status_delivered", sent["provider_message_id"])
    status, _ = await webhook(http, server, inbox, callback)
    assert status == 200
    await agent.wait_until(lambda: statuses(agent, reply_id) == ["sent", "delivered"])
    changed = events_of(agent, "message.status_changed")[-1]
    assert changed["payload"]["previous_status"] == "sent"
    assert changed["payload"]["provider_message_id"] == sent["provider_message_id"]


async def test_duplicate_and_forged_webhooks(
    hub: Hub, server: str, mock: ProviderMock, http: aiohttp.ClientSession
) -> None:
    inbox = await twilio_inbox(hub, mock)
    pairs = fixture("sms_inbound")
    for _ in range(2):
        assert (await webhook(http, server, inbox, pairs))[0] == 200
    assert await count(hub, "messages") == 1

    path, body, headers = signed_request(inbox, with_sid("sms_inbound", "SMforged"))
    forged = {**headers, "X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}
    async with http.post(server + path, data=body, headers=forged) as response:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "invalid_signature"
    assert await count(hub, "messages") == 1
    assert not await hub.pool.fetchval(
        "SELECT 1 FROM messages WHERE provider_message_id = 'SMforged'"
    )


async def test_media_failing_twice_then_arriving_is_stored_byte_identical(
    hub: Hub, server: str, mock: ProviderMock, http: aiohttp.ClientSession
) -> None:
    inbox = await twilio_inbox(hub, mock)
    photo = hashlib.sha512(b"parcel").digest() * 1000
    url = twilio_api(mock).add_media(mock, ACCOUNT_SID, photo, "image/jpeg")
    mock.fail_next("twilio.media", 2, twilio_error(503, 20503, "Service unavailable"))
    status, text = await webhook(http, server, inbox, fixture("mms_inbound", MediaUrl0=url))
    assert status == 200, text
    assert len(mock.of("twilio.media")) == 3
    attachments = await hub.pool.fetchval("SELECT attachments FROM messages")
    assert [a["content_type"] for a in attachments] == ["image/jpeg"]
    async with http.get(server + attachments[0]["url"], headers=AUTH) as download:
        assert download.status == 200
        assert await download.read() == photo


async def test_a_429_on_send_is_retried(
    hub: Hub, server: str, mock: ProviderMock, agent: Agent, http: aiohttp.ClientSession
) -> None:
    inbox = await twilio_inbox(hub, mock)
    assert (await webhook(http, server, inbox, fixture("sms_inbound")))[0] == 200
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    mock.fail_next("twilio.messages", 1, TOO_MANY_REQUESTS)
    async with http.post(
        f"{server}/api/v1/conversations/{conversation_id}/messages",
        json={"content": "Sorry for the wait"},
        headers=AUTH,
    ) as response:
        reply_id = (await response.json())["id"]
    await wait_for_status(hub, reply_id, "sent")
    assert len(mock.of("twilio.messages")) == 2
    await agent.wait_until(
        lambda: any(
            e["payload"]["message_id"] == reply_id and e["payload"]["status"] == "sent"
            for e in events_of(agent, "message.status_changed")
        )
    )
    await asyncio.sleep(0.1)
    failed = [
        e for e in events_of(agent, "message.status_changed") if e["payload"]["status"] == "failed"
    ]
    assert not failed
