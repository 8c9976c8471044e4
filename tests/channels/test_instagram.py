"""Instagram Direct against the channel conformance suite (the Messenger harness, for an Instagram
account), and what is Instagram's own: story replies and mentions with the story fetched, unsends,
read reports naming a message, echoes arriving on the messages field, sends from the account."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from channels.instagram import InstagramChannel
from channels.instagram.adapter import MANIFEST
from hub.app import Hub
from tests.channels.conformance import ChannelConformance, Harness, agent_message, wait_for_status
from tests.channels.test_meta_messenger import MessengerHarness
from tests.support.meta_mock import (
    IG_ACCOUNT_ID,
    IGSID,
    PAGE_ID,
    MessengerApi,
    delivery,
    echo_event,
    event,
    messenger_api,
    meta_inbox,
    signed,
    text_event,
)
from tests.support.provider_mock import ProviderMock

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]
CHANNEL = "instagram"


@pytest.fixture
async def mock() -> AsyncIterator[ProviderMock]:
    provider = ProviderMock(MessengerApi())
    await provider.start()
    yield provider
    await provider.close()


class InstagramHarness(MessengerHarness):
    manifest = MANIFEST
    channel = CHANNEL
    obj = "instagram"
    account = IG_ACCOUNT_ID
    other_account = "17841400000000002"
    customer = IGSID


class TestInstagramConformance(ChannelConformance):
    @pytest.fixture
    def harness(self) -> Harness:
        return InstagramHarness()


@pytest.fixture
async def inbox(hub: Hub, mock: ProviderMock) -> str:
    return await meta_inbox(hub, mock, CHANNEL)


def ig(*events: dict[str, Any]) -> dict[str, Any]:
    return delivery(*events, account=IG_ACCOUNT_ID, obj="instagram")


def text(mid: str, body: str = "hello", **message: Any) -> dict[str, Any]:
    return text_event(mid, body, sender=IGSID, account=IG_ACCOUNT_ID, **message)


async def post(client: Client, inbox_id: str, payload: Any) -> Any:
    path, body, headers = signed(CHANNEL, inbox_id, payload)
    return await client.post(path, data=body, headers=headers)


async def rows(hub: Hub) -> list[dict[str, Any]]:
    found = await hub.pool.fetch(
        """SELECT direction, content, content_type, attachments, status FROM messages
            ORDER BY id"""
    )
    return [dict(r) for r in found]


async def test_story_replies_and_mentions_keep_the_story(
    client: Client, hub: Hub, mock: ProviderMock, inbox: str
) -> None:
    api = messenger_api(mock)
    story = api.add_file(mock, b"\xff\xd8\xff story", "image/jpeg", "story.jpg")
    mention = api.add_file(mock, b"\xff\xd8\xff mention", "image/jpeg", "mention.jpg")
    mentioned = text("m_mention", "")
    del mentioned["message"]["text"]
    mentioned["message"]["attachments"] = [{"type": "story_mention", "payload": {"url": mention}}]
    payload = ig(
        text("m_reply", "Love this!", reply_to={"story": {"url": story, "id": "1790"}}),
        mentioned,
    )
    response = await post(client, inbox, payload)
    assert response.status == 200, await response.text()
    reply, mention_row = await rows(hub)
    assert reply["content_type"] == "story_reply"
    assert reply["content"] == "Replied to your Instagram story\nLove this!"
    assert reply["attachments"][0]["url"].startswith("/api/v1/media/")
    assert mention_row["content_type"] == "story_mention"
    assert mention_row["content"] == "Mentioned you in their Instagram story"
    assert mention_row["attachments"][0]["size"] == len(b"\xff\xd8\xff mention")


async def test_an_unsend_is_shown_and_read_reports_name_the_message(
    client: Client, hub: Hub, mock: ProviderMock, inbox: str
) -> None:
    assert (await post(client, inbox, ig(text("m_in", "oops")))).status == 200
    unsent = text("m_in", "")
    unsent["message"] = {"mid": "m_in", "is_deleted": True}
    assert (await post(client, inbox, ig(unsent))).status == 200
    shown = [(r["content_type"], r["content"]) for r in await rows(hub)]
    assert shown == [("text", "oops"), ("unsent", "Unsent a message")]
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    message_id = await agent_message(hub, conversation_id, "No problem")
    row = await wait_for_status(hub, message_id, "sent")
    (sent,) = mock.of("meta.messages")
    assert sent.path == f"/v23.0/{IG_ACCOUNT_ID}/messages"
    assert sent.json()["recipient"] == {"id": IGSID}
    assert "metadata" not in sent.json()["message"]
    read = event("read", {"mid": row["provider_message_id"]}, sender=IGSID, account=IG_ACCOUNT_ID)
    assert (await post(client, inbox, ig(read))).status == 200
    await wait_for_status(hub, message_id, "read")


async def test_an_echo_from_the_instagram_app_is_outgoing(
    client: Client, hub: Hub, mock: ProviderMock, inbox: str
) -> None:
    assert (await post(client, inbox, ig(text("m_in", "hi")))).status == 200
    echo = echo_event("m_app", "replied from the phone", to=IGSID, account=IG_ACCOUNT_ID)
    assert (await post(client, inbox, ig(echo))).status == 200
    assert [(r["direction"], r["content"]) for r in await rows(hub)] == [
        ("inbound", "hi"),
        ("outbound", "replied from the phone"),
    ]
    await asyncio.sleep(0.1)
    assert not mock.of("meta.messages")


async def test_a_page_delivery_is_not_an_instagram_one(
    client: Client, hub: Hub, inbox: str
) -> None:
    payload = delivery(text_event("m_page", sender=IGSID, account=PAGE_ID))
    response = await post(client, inbox, payload)
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "unsupported_object"
    assert await hub.pool.fetchval("SELECT count(*) FROM messages") == 0


def test_settings_are_checked() -> None:
    channel = InstagramChannel()
    channel.check_settings({"instagram_account_id": IG_ACCOUNT_ID})
    with pytest.raises(ValueError):
        channel.check_settings({"page_id": PAGE_ID})
