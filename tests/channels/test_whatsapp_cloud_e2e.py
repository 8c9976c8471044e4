"""End to end over real HTTP: a signed WhatsApp Cloud webhook becomes a contact, a conversation and
a message in PostgreSQL, travels the bus and reaches an agent socket; the agent's reply goes to the
Graph API mock; Meta's status webhook reaches the agent as a status change. Plus an image stored
byte-identical, a template reply outside the 24-hour window (and free text refused there), a
duplicate and a forged webhook, and a 429 on send."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from hub.app import Hub
from tests.channels.conformance import (
    AUTH,
    agent_message,
    count,
    events_of,
    statuses,
    wait_for_status,
)
from tests.realtime.agents import Agent
from tests.support.graph_mock import (
    CUSTOMER,
    CUSTOMER_WA_ID,
    TOO_MANY_REQUESTS,
    GraphApi,
    graph_api,
    message_webhook,
    signed,
    status_webhook,
    value_of,
    whatsapp_inbox,
)
from tests.support.provider_mock import ProviderMock

pytestmark = pytest.mark.postgres
DAY = 24 * 3600


@pytest.fixture
async def mock() -> AsyncIterator[ProviderMock]:
    provider = ProviderMock(GraphApi())
    await provider.start()
    yield provider
    await provider.close()


async def webhook(
    http: aiohttp.ClientSession, server: str, inbox: str, payload: Any, **headers: str
) -> tuple[int, Any]:
    path, body, signed_headers = signed(inbox, payload)
    async with http.post(server + path, data=body, headers={**signed_headers, **headers}) as r:
        return r.status, await r.json()


async def reply(http: aiohttp.ClientSession, server: str, conversation_id: str, text: str) -> str:
    return await reply_json(http, server, conversation_id, {"content": text})


async def reply_json(
    http: aiohttp.ClientSession, server: str, conversation_id: str, body: dict[str, Any]
) -> str:
    async with http.post(
        f"{server}/api/v1/conversations/{conversation_id}/messages", json=body, headers=AUTH
    ) as response:
        assert response.status == 201, await response.text()
        message_id: str = (await response.json())["id"]
        return message_id


async def test_text_in_reply_out_status_back(
    hub: Hub, server: str, mock: ProviderMock, agent: Agent, http: aiohttp.ClientSession
) -> None:
    inbox = await whatsapp_inbox(hub, mock)
    status, answer = await webhook(http, server, inbox, message_webhook())
    assert status == 200, answer
    (stored,) = answer["messages"]
    await agent.wait_until(lambda: bool(events_of(agent, "message.received")))
    received = events_of(agent, "message.received")[0]
    assert received["payload"]["message_id"] == stored["id"]
    assert received["payload"]["content"] == "ආයුබෝවන්! මගේ ඇණවුම කොහෙද?"
    assert received["payload"]["channel"] == "whatsapp_cloud"

    reply_id = await reply(http, server, stored["conversation_id"], "ඔව්, අද එවනවා 📦")
    sent = await wait_for_status(hub, reply_id, "sent")
    (call,) = mock.of("graph.messages")
    assert call.json()["to"] == CUSTOMER_WA_ID
    assert call.json()["text"]["body"] == "ඔව්, අද එවනවා 📦"
    await agent.wait_until(lambda: statuses(agent, reply_id) == ["sent"])

    for provider_status in ("delivered", "read"):
        callback = status_webhook(sent["provider_message_id"], provider_status)
        assert (await webhook(http, server, inbox, callback))[0] == 200
    await agent.wait_until(lambda: statuses(agent, reply_id) == ["sent", "delivered", "read"])
    changed = events_of(agent, "message.status_changed")[-1]
    assert changed["payload"]["previous_status"] == "delivered"
    assert changed["payload"]["provider_message_id"] == sent["provider_message_id"]


async def test_an_image_is_stored_byte_identical_and_downloadable(
    hub: Hub, server: str, mock: ProviderMock, agent: Agent, http: aiohttp.ClientSession
) -> None:
    inbox = await whatsapp_inbox(hub, mock)
    photo = b"\xff\xd8\xff\xe0" + hashlib.sha512(b"parcel").digest() * 1000
    media_id = graph_api(mock).add_media(photo, "image/jpeg")
    payload = message_webhook("image")
    value_of(payload)["messages"][0]["image"]["id"] = media_id
    status, answer = await webhook(http, server, inbox, payload)
    assert status == 200, answer
    await agent.wait_until(lambda: bool(events_of(agent, "message.received")))
    (attachment,) = events_of(agent, "message.received")[0]["payload"]["attachments"]
    assert attachment["content_type"] == "image/jpeg" and attachment["size"] == len(photo)
    assert attachment["url"].startswith("/api/v1/media/")
    async with http.get(server + attachment["url"], headers=AUTH) as download:
        assert download.status == 200
        assert await download.read() == photo


async def test_a_template_outside_the_window_is_sent_and_free_text_is_refused(
    hub: Hub, server: str, mock: ProviderMock, agent: Agent, http: aiohttp.ClientSession
) -> None:
    inbox = await whatsapp_inbox(hub, mock)
    yesterday = message_webhook(at=time.time() - DAY - 300)
    status, answer = await webhook(http, server, inbox, yesterday)
    assert status == 200, answer
    conversation_id = answer["messages"][0]["conversation_id"]

    # free text is refused up front, over REST, with the reason; nothing is stored or sent
    async with http.post(
        f"{server}/api/v1/conversations/{conversation_id}/messages",
        json={"content": "Are you still there?"},
        headers=AUTH,
    ) as refused:
        assert refused.status == 422
        assert (await refused.json())["error"]["code"] == "window_closed"
    outbound = "SELECT count(*) FROM messages WHERE direction = 'outbound'"
    assert await hub.pool.fetchval(outbound) == 0

    # one queued while the window was open but sent after it closed fails at send time
    late = await agent_message(hub, conversation_id, "Are you still there?")
    failed = await wait_for_status(hub, late, "failed")
    assert failed["error_code"] == "window_closed"
    await agent.wait_until(lambda: statuses(agent, late) == ["failed"])
    shown = next(
        e for e in events_of(agent, "message.status_changed") if e["payload"]["message_id"] == late
    )
    assert "only a template" in shown["payload"]["error_message"]
    assert not mock.of("graph.messages")

    # a template goes out whenever; sent over REST like any reply
    template = await reply_json(
        http,
        server,
        conversation_id,
        {
            "template": {
                "name": "delivery_update",
                "language": "si",
                "body_parameters": ["Nimal", "#2041"],
            }
        },
    )
    await wait_for_status(hub, template, "sent")
    await agent.wait_until(lambda: statuses(agent, template) == ["sent"])
    (call,) = mock.of("graph.messages")
    sent = call.json()
    assert sent["type"] == "template" and sent["template"]["name"] == "delivery_update"
    assert sent["template"]["language"] == {"code": "si"}
    created = next(
        e for e in events_of(agent, "message.created") if e["payload"]["message_id"] == template
    )
    assert created["payload"]["content_type"] == "template"
    assert created["payload"]["content"] == "Template delivery_update (si): Nimal, #2041"


async def test_duplicate_and_forged_webhooks(
    hub: Hub, server: str, mock: ProviderMock, http: aiohttp.ClientSession
) -> None:
    inbox = await whatsapp_inbox(hub, mock)
    payload = message_webhook()
    first = await webhook(http, server, inbox, payload)
    again = await webhook(http, server, inbox, payload)
    assert first[0] == again[0] == 200
    assert again[1]["messages"][0]["duplicate"] is True
    assert again[1]["messages"][0]["id"] == first[1]["messages"][0]["id"]
    assert await count(hub, "messages") == 1

    forged = message_webhook(wamid="wamid.forged", text="refund me")
    status, answer = await webhook(
        http, server, inbox, forged, **{"X-Hub-Signature-256": "sha256=" + "0" * 64}
    )
    assert status == 403 and answer["error"]["code"] == "invalid_signature"
    assert await count(hub, "messages") == 1
    assert not await hub.pool.fetchval(
        "SELECT 1 FROM messages WHERE provider_message_id = 'wamid.forged'"
    )


async def test_a_429_on_send_is_retried(
    hub: Hub, server: str, mock: ProviderMock, agent: Agent, http: aiohttp.ClientSession
) -> None:
    inbox = await whatsapp_inbox(hub, mock)
    status, answer = await webhook(http, server, inbox, message_webhook())
    assert status == 200
    mock.fail_next("graph.messages", 1, TOO_MANY_REQUESTS)
    reply_id = await reply(http, server, answer["messages"][0]["conversation_id"], "Sorry!")
    await wait_for_status(hub, reply_id, "sent")
    assert len(mock.of("graph.messages")) == 2
    await agent.wait_until(lambda: statuses(agent, reply_id) == ["sent"])
    await asyncio.sleep(0.1)
    assert statuses(agent, reply_id) == ["sent"]
    assert (
        await hub.pool.fetchval("SELECT address FROM contact_identities WHERE channel = 'phone'")
        == CUSTOMER
    )
