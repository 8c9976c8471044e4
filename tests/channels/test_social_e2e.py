"""End to end over real HTTP, for the social DM channels: a signed Messenger delivery and a
Telegram update become messages an agent socket receives; the agent's reply goes to the provider
mock; Messenger's delivery and read watermarks reach the agent as status changes, and an echo from
the Page's own inbox reaches it as an outgoing message. Plus a Messenger reply 8 days late,
refused up front over REST with the reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from channels.registry import REGISTRY
from hub.app import Hub
from tests.channels.conformance import AUTH, events_of, statuses, wait_for_status
from tests.realtime.agents import Agent
from tests.support.api_channel import ApiInbox, api_body
from tests.support.meta_mock import (
    PSID,
    MessengerApi,
    delivery,
    echo_event,
    event,
    messenger_api,
    meta_inbox,
    now_ms,
    signed,
    text_event,
)
from tests.support.provider_mock import ProviderMock
from tests.support.telegram_mock import (
    CHAT_ID,
    TelegramApi,
    message,
    posted,
    telegram_api,
    telegram_inbox,
    update,
)

pytestmark = pytest.mark.postgres
CONSOLE = Path(__file__).parent.parent.parent / "console"


@pytest.fixture
async def mock() -> AsyncIterator[ProviderMock]:
    provider = ProviderMock(MessengerApi(), TelegramApi())
    await provider.start()
    yield provider
    await provider.close()


async def messenger(
    http: aiohttp.ClientSession, server: str, inbox: str, payload: Any
) -> tuple[int, Any]:
    path, body, headers = signed("meta_messenger", inbox, payload)
    async with http.post(server + path, data=body, headers=headers) as response:
        return response.status, await response.json()


async def reply(http: aiohttp.ClientSession, server: str, conversation_id: str, text: str) -> Any:
    async with http.post(
        f"{server}/api/v1/conversations/{conversation_id}/messages",
        json={"content": text},
        headers=AUTH,
    ) as response:
        return response.status, await response.json()


async def test_messenger_in_reply_out_watermarks_and_an_echo_reach_the_agent(
    hub: Hub, server: str, mock: ProviderMock, agent: Agent, http: aiohttp.ClientSession
) -> None:
    inbox = await meta_inbox(hub, mock)
    messenger_api(mock).profiles[PSID] = {"first_name": "Nimal", "last_name": "Perera"}
    status, answer = await messenger(
        http, server, inbox, delivery(text_event("m_e2e", "ආයුබෝවන්! මගේ ඇණවුම කොහෙද?"))
    )
    assert status == 200, answer
    (stored,) = answer["messages"]
    await agent.wait_until(lambda: bool(events_of(agent, "message.received")))
    received = events_of(agent, "message.received")[0]["payload"]
    assert received["content"] == "ආයුබෝවන්! මගේ ඇණවුම කොහෙද?"
    assert received["channel"] == "meta_messenger"
    created = events_of(agent, "contact.created")
    assert created and created[0]["payload"]["name"] == "Nimal Perera"

    code, sent = await reply(http, server, stored["conversation_id"], "ඔව්, අද එවනවා 📦")
    assert code == 201, sent
    row = await wait_for_status(hub, sent["id"], "sent")
    (call,) = mock.of("meta.messages")
    assert call.json()["recipient"] == {"id": PSID}
    assert call.json()["messaging_type"] == "RESPONSE"
    assert call.json()["message"]["text"] == "ඔව්, අද එවනවා 📦"
    await agent.wait_until(lambda: statuses(agent, sent["id"]) == ["sent"])

    for kind in ("delivery", "read"):
        mark = delivery(event(kind, {"watermark": now_ms() + 1000}))
        assert (await messenger(http, server, inbox, mark))[0] == 200
    await agent.wait_until(lambda: statuses(agent, sent["id"]) == ["sent", "delivered", "read"])
    last = events_of(agent, "message.status_changed")[-1]["payload"]
    assert last["provider_message_id"] == row["provider_message_id"]

    echo = delivery(echo_event("m_from_page", "Answered from the Page inbox"))
    assert (await messenger(http, server, inbox, echo))[0] == 200

    def echoed() -> bool:
        return any(
            e["payload"]["content"] == "Answered from the Page inbox"
            for e in events_of(agent, "message.created")
        )

    await agent.wait_until(echoed)
    assert len(mock.of("meta.messages")) == 1


async def test_a_messenger_reply_a_week_late_is_refused_with_the_reason(
    hub: Hub, server: str, mock: ProviderMock, http: aiohttp.ClientSession
) -> None:
    inbox = await meta_inbox(hub, mock, human_agent=True)
    old = text_event("m_old", "hello?")
    old["timestamp"] = now_ms() - 8 * 24 * 3600 * 1000
    status, answer = await messenger(http, server, inbox, delivery(old))
    assert status == 200, answer
    code, refused = await reply(http, server, answer["messages"][0]["conversation_id"], "Hi!")
    assert code == 422
    assert refused["error"]["code"] == "window_closed"
    assert "nothing can be sent until they write again" in refused["error"]["message"]
    assert not mock.of("meta.messages")


async def test_telegram_in_and_reply_out(
    hub: Hub, server: str, mock: ProviderMock, agent: Agent, http: aiohttp.ClientSession
) -> None:
    inbox, secret = await telegram_inbox(hub, mock)
    path, body, headers = posted(inbox, secret, update(message=message(7, "/start order_1042")))
    async with http.post(server + path, data=body, headers=headers) as response:
        assert response.status == 200, await response.text()
        (stored,) = (await response.json())["messages"]
    await agent.wait_until(lambda: bool(events_of(agent, "message.received")))
    received = events_of(agent, "message.received")[0]["payload"]
    assert received["content"] == "Started the bot: order_1042"
    assert received["content_type"] == "start"

    code, sent = await reply(http, server, stored["conversation_id"], "ආයුබෝවන්! How can I help?")
    assert code == 201, sent
    row = await wait_for_status(hub, sent["id"], "sent")
    assert row["provider_message_id"].startswith(f"{CHAT_ID}:")
    method, params = telegram_api(mock).sent[-1]
    assert method == "sendMessage" and params["chat_id"] == str(CHAT_ID)
    assert params["text"] == "ආයුබෝවන්! How can I help?"
    await agent.wait_until(lambda: statuses(agent, sent["id"]) == ["sent"])


async def test_quick_replies_are_refused_where_the_channel_has_none(
    hub: Hub, server: str, http: aiohttp.ClientSession
) -> None:
    shop = await ApiInbox.create(hub, server)
    answer = await shop.post(http, api_body("api-1"))
    conversation_id = answer["messages"][0]["conversation_id"]
    async with http.post(
        f"{server}/api/v1/conversations/{conversation_id}/messages",
        json={"content": "Pick one", "quick_replies": ["Red"]},
        headers=AUTH,
    ) as refused:
        assert refused.status == 422
        assert (await refused.json())["error"]["code"] == "quick_replies_not_supported"
    assert await hub.pool.fetchval("SELECT count(*) FROM messages") == 1


@pytest.mark.parametrize("channel", ["meta_messenger", "instagram", "telegram"])
def test_the_inbox_wizard_has_a_label_for_every_field(channel: str) -> None:
    """The console's inbox wizard builds its form from the manifest and labels each field from
    the message catalogues (console/src/settings.js)."""
    adapter = REGISTRY.get(channel)
    assert adapter is not None
    m = adapter.manifest
    keys = [f"inbox.setting.{k}" for k in (*m.required_settings, *m.optional_settings)]
    keys += [f"inbox.secret.{k}" for k in (*m.required_secrets, *m.optional_secrets)]
    for language in ("en", "si"):
        catalogue = orjson.loads((CONSOLE / "i18n" / f"{language}.json").read_bytes())
        for key in keys:
            assert catalogue.get(key) and catalogue.get(f"{key}.hint"), (language, key)


async def test_an_agents_typing_is_shown_to_the_customer(
    hub: Hub, server: str, mock: ProviderMock, agent: Agent, http: aiohttp.ClientSession
) -> None:
    messenger_inbox = await meta_inbox(hub, mock)
    status, answer = await messenger(http, server, messenger_inbox, delivery(text_event("m_t")))
    assert status == 200, answer
    on_messenger = answer["messages"][0]["conversation_id"]
    bot, secret = await telegram_inbox(hub, mock)
    path, body, headers = posted(bot, secret, update(message=message(3, "hi")))
    async with http.post(server + path, data=body, headers=headers) as response:
        on_telegram = (await response.json())["messages"][0]["conversation_id"]
    for conversation_id in (on_messenger, on_telegram):
        joined = await agent.client.call(
            "join", {"conversation_id": conversation_id}, namespace="/agent"
        )
        assert joined == {"ok": True}
        for on in (True, False, True):  # a burst: shown once; stopping shows nothing
            typed = await agent.client.call(
                "typing", {"conversation_id": conversation_id, "on": on}, namespace="/agent"
            )
            assert typed == {"ok": True}

    def shown() -> bool:
        return bool(messenger_api(mock).actions) and bool(telegram_api(mock).actions)

    await agent.wait_until(shown)
    assert messenger_api(mock).actions == [(PSID, "typing_on")]
    assert telegram_api(mock).actions == [(str(CHAT_ID), "typing")]
