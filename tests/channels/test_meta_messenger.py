"""Facebook Messenger against the channel conformance suite, and what is Messenger's own: the GET
handshake, deliveries with many entries and events, files fetched before the message is stored,
quick replies, postbacks, reactions, edits, echoes (the hub's own and from elsewhere), delivery and
read watermarks, the 24-hour window and the HUMAN_AGENT tag, and the sender's profile."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from channels._base import OutboundMessage, SendError, SettingsInvalid
from channels._meta import graph
from channels.meta_messenger import MessengerChannel
from channels.meta_messenger.adapter import FLAVOUR, MANIFEST
from hub.app import Hub
from tests.channels.conformance import (
    AUTH,
    ChannelConformance,
    Harness,
    Request,
    agent_message,
    count,
    wait_for_status,
)
from tests.support.meta_mock import (
    APP_ID,
    APP_SECRET,
    JSON,
    OTHER_PAGE_ID,
    PAGE_ID,
    PSID,
    TEMPORARY,
    UNAVAILABLE_PERSON,
    VERIFY_TOKEN,
    MessengerApi,
    delivery,
    echo_event,
    event,
    messenger_api,
    meta_inbox,
    now_ms,
    signed,
    text_event,
    webhook_path,
    wire,
)
from tests.support.provider_mock import ProviderMock

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]
SIGNATURE = "X-Hub-Signature-256"
CHANNEL = "meta_messenger"


@pytest.fixture
async def mock() -> AsyncIterator[ProviderMock]:
    provider = ProviderMock(MessengerApi())
    await provider.start()
    yield provider
    await provider.close()


class MessengerHarness(Harness):
    manifest = MANIFEST
    unknown_status_refused = False  # statuses come in one delivery with messages: skipped
    provider_statuses = ("echo", "delivery", "read")
    send_operation = "meta.messages"
    transient_failure = TEMPORARY
    transient_code = "2"
    permanent_failure = UNAVAILABLE_PERSON
    permanent_code = "551"
    delivered_status = "delivery"
    sent_status = "echo"

    channel = CHANNEL
    obj = "page"
    account = PAGE_ID
    other_account = OTHER_PAGE_ID
    customer = PSID

    async def create_inbox(self, hub: Hub, mock: ProviderMock) -> str:
        return await meta_inbox(hub, mock, self.channel)

    def _delivery(self, *events: dict[str, Any], other: bool = False) -> dict[str, Any]:
        account = self.other_account if other else self.account
        return delivery(*events, account=account, obj=self.obj)

    def _text(self, mid: str, text: str = "hello", **message: Any) -> dict[str, Any]:
        return text_event(mid, text, sender=self.customer, account=self.account, **message)

    def _event(self, kind: str, body: Any) -> dict[str, Any]:
        return event(kind, body, sender=self.customer, account=self.account)

    def _echo(self, mid: str, text: str, **message: Any) -> dict[str, Any]:
        return echo_event(mid, text, to=self.customer, account=self.account, **message)

    def _request(self, payload: Any, **kwargs: Any) -> Request:
        path, body, headers = signed(self.channel, self.inbox_id, payload, **kwargs)
        return Request(path, body, headers)

    def inbound(self, provider_message_id: str, text: str = "hello") -> Request:
        return self._request(self._delivery(self._text(provider_message_id, text)))

    def forged(self, provider_message_id: str) -> list[tuple[str, Request]]:
        payload = self._delivery(self._text(provider_message_id))
        good = self._request(payload)
        tampered = wire(self._delivery(self._text(provider_message_id, "refund me")))
        sha1 = hmac.new(APP_SECRET.encode(), good.body, hashlib.sha1).hexdigest()
        path = good.path
        return [
            ("missing signature", Request(path, good.body, JSON)),
            ("empty signature", Request(path, good.body, {**JSON, SIGNATURE: ""})),
            ("wrong app secret", self._request(payload, secret="not-the-app-secret")),
            ("signed with the verify token", self._request(payload, secret=VERIFY_TOKEN)),
            ("body changed after signing", Request(path, tampered, good.headers)),
            (
                "only the SHA-1 signature",
                Request(path, good.body, {**JSON, "X-Hub-Signature": f"sha1={sha1}"}),
            ),
            (
                "no sha256= prefix",
                Request(
                    path,
                    good.body,
                    {**JSON, SIGNATURE: good.headers[SIGNATURE].removeprefix("sha256=")},
                ),
            ),
        ]

    def malformed(self) -> list[tuple[str, Request]]:
        path = webhook_path(self.channel, self.inbox_id)

        def message(**fields: Any) -> Any:
            item = self._text("m_malformed")
            for key, value in fields.items():
                if value is None:
                    item["message"].pop(key, None)
                else:
                    item["message"][key] = value
            return self._delivery(item)

        bad_sender = self._text("m_bad_sender")
        bad_sender["sender"] = {"id": "../../me"}
        bad_time = self._text("m_bad_time")
        bad_time["timestamp"] = "yesterday"
        signed_form = self._request(b"object=page")
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        return [
            ("not JSON", self._request(b"{not json")),
            ("a JSON array", self._request(b"[]")),
            ("no entry", self._request({"object": self.obj})),
            ("an empty entry list", self._request({"object": self.obj, "entry": []})),
            ("entry is not a list", self._request({"object": self.obj, "entry": {}})),
            ("another object", self._request({**message(), "object": "whatsapp_business_account"})),
            (
                "only another account's entries",
                self._request(self._delivery(self._text("m_other"), other=True)),
            ),
            ("a message without a mid", self._request(message(mid=None))),
            ("a sender that is not an id", self._request(self._delivery(bad_sender))),
            ("timestamp is not a time", self._request(self._delivery(bad_time))),
            ("NUL in the text", self._request(message(text="a\x00b"))),
            ("a mid that is too long", self._request(message(mid="m_" + "x" * 300))),
            ("a form body", Request(path, signed_form.body, {**signed_form.headers, **form})),
            ("GET without the handshake", Request(path, b"", {}, method="GET")),
            (
                "GET with a wrong verify token",
                Request(
                    path + "?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1158201444",
                    b"",
                    {},
                    method="GET",
                ),
            ),
        ]

    def status(self, provider_message_id: str, provider_status: str) -> Request:
        if provider_status == "echo":
            item = self._echo(provider_message_id, "sent by the hub", metadata="hub:01ABC")
        elif provider_status == "delivery":
            item = self._event("delivery", {"mids": [provider_message_id], "watermark": now_ms()})
        elif provider_status == "read":
            item = self._event("read", {"watermark": now_ms()})
        else:
            item = self._event(provider_status, {"mid": provider_message_id})
        return self._request(self._delivery(item))


class TestMessengerConformance(ChannelConformance):
    @pytest.fixture
    def harness(self) -> Harness:
        return MessengerHarness()


# -- Messenger's own -----------------------------------------------------------------------------


@pytest.fixture
async def inbox(hub: Hub, mock: ProviderMock) -> str:
    return await meta_inbox(hub, mock, app_id=APP_ID)


async def post(client: Client, inbox_id: str, payload: Any) -> Any:
    path, body, headers = signed(CHANNEL, inbox_id, payload)
    return await client.post(path, data=body, headers=headers)


async def rows(hub: Hub) -> list[dict[str, Any]]:
    found = await hub.pool.fetch(
        """SELECT direction, sender_type, content, content_type, attachments, provider_message_id,
                  status FROM messages ORDER BY id"""
    )
    return [dict(r) for r in found]


async def test_the_get_handshake_answers_the_challenge(client: Client, inbox: str) -> None:
    path = webhook_path(CHANNEL, inbox)
    ok = await client.get(
        f"{path}?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"
    )
    assert ok.status == 200 and await ok.text() == "1158201444"
    wrong = await client.get(f"{path}?hub.mode=subscribe&hub.verify_token=x&hub.challenge=1")
    assert wrong.status == 403


async def test_every_entry_and_event_of_a_delivery_is_taken(
    client: Client, hub: Hub, inbox: str
) -> None:
    payload = delivery(text_event("m_1", "first"), text_event("m_2", "second"))
    payload["entry"].append(
        {"id": PAGE_ID, "time": now_ms(), "messaging": [text_event("m_3", "third")]}
    )
    payload["entry"].append(  # another page of the same app: skipped, not refused
        {"id": OTHER_PAGE_ID, "time": now_ms(), "messaging": [text_event("m_4", "elsewhere")]}
    )
    response = await post(client, inbox, payload)
    assert response.status == 200, await response.text()
    assert [r["content"] for r in await rows(hub)] == ["first", "second", "third"]
    assert await count(hub, "conversations") == 1


async def test_files_are_stored_before_the_message(
    client: Client, hub: Hub, mock: ProviderMock, inbox: str
) -> None:
    photo = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    url = messenger_api(mock).add_file(mock, photo, "image/png", "photo.png")
    item = text_event("m_file", "", attachments=[{"type": "image", "payload": {"url": url}}])
    del item["message"]["text"]
    response = await post(client, inbox, delivery(item))
    assert response.status == 200, await response.text()
    (row,) = await rows(hub)
    (attachment,) = row["attachments"]
    assert attachment["content_type"] == "image/png" and attachment["size"] == len(photo)
    key = attachment["url"].removeprefix("/api/v1/media/")
    assert await hub.pool.fetchval("SELECT sha256 FROM media WHERE key = $1", key) == (
        hashlib.sha256(photo).hexdigest()
    )
    served = await client.get(attachment["url"], headers=AUTH)
    assert served.status == 200 and await served.read() == photo


async def test_a_file_on_another_host_is_not_fetched(
    client: Client, hub: Hub, mock: ProviderMock, inbox: str
) -> None:
    item = text_event(
        "m_evil",
        "look",
        attachments=[{"type": "image", "payload": {"url": "http://127.0.0.1:9/metrics"}}],
    )
    response = await post(client, inbox, delivery(item))
    assert response.status == 200
    (row,) = await rows(hub)
    assert row["attachments"][0]["url"] == ""  # shown as not received
    assert row["attachments"][0]["unavailable"] == "not_received"
    assert await count(hub, "media") == 0
    assert not mock.of("meta.cdn")


async def test_an_oversize_file_is_not_kept(
    client: Client, hub: Hub, mock: ProviderMock, inbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graph, "MAX_ATTACHMENT_BYTES", 1000)
    url = messenger_api(mock).add_file(mock, b"x" * 5000, "video/mp4", "big.mp4")
    item = text_event("m_big", "video", attachments=[{"type": "video", "payload": {"url": url}}])
    response = await post(client, inbox, delivery(item))
    assert response.status == 200
    (row,) = await rows(hub)
    assert row["content"] == "video"  # the message is kept, its file marked too large
    assert row["attachments"][0]["url"] == ""
    assert row["attachments"][0]["unavailable"] == "too_large"
    assert await count(hub, "media") == 0


async def test_quick_replies_postbacks_reactions_and_edits(
    client: Client, hub: Hub, inbox: str
) -> None:
    payload = delivery(
        text_event("m_q", "Red", quick_reply={"payload": "COLOR_RED"}),
        event("postback", {"mid": "m_pb", "title": "Track my order", "payload": "TRACK_ORDER"}),
        event("reaction", {"mid": "m_q", "action": "react", "emoji": "\u2764", "reaction": "love"}),
        event("message_edit", {"mid": "m_q", "text": "Blue", "num_edit": 1}),
    )
    for _ in range(2):  # Meta delivers again: the edit is not applied twice
        response = await post(client, inbox, payload)
        assert response.status == 200, await response.text()
    shown = [(r["content_type"], r["content"]) for r in await rows(hub)]
    assert shown == [
        ("quick_reply", "Blue"),  # the edit shown on the message itself
        ("postback", "Track my order\npayload: TRACK_ORDER"),
        ("reaction", "\u2764"),
    ]
    edited = await hub.pool.fetchrow(
        "SELECT edited_at, edits FROM messages WHERE provider_message_id = 'm_q'"
    )
    assert edited is not None and edited["edited_at"] is not None
    assert [(e["edit_id"], e["previous_content"]) for e in edited["edits"]] == [
        ("m_q#edit:1", "Red\npayload: COLOR_RED")
    ]
    # an edit of a message the hub never stored is kept as a message of its own
    unknown = delivery(event("message_edit", {"mid": "m_old", "text": "Still there?"}))
    response = await post(client, inbox, unknown)
    assert response.status == 200, await response.text()
    shown = [(r["content_type"], r["content"]) for r in await rows(hub)]
    assert shown[-1] == ("text", "Still there?")


async def test_echoes_of_the_hubs_messages_are_statuses_and_others_are_outgoing(
    client: Client, hub: Hub, mock: ProviderMock, inbox: str
) -> None:
    first = await post(client, inbox, delivery(text_event("m_in", "hi")))
    assert first.status == 200
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    message_id = await agent_message(hub, conversation_id, "hello from the hub")
    row = await wait_for_status(hub, message_id, "sent")
    pmid = row["provider_message_id"]
    assert messenger_api(mock).sent[-1]["message"]["metadata"] == f"hub:{message_id}"
    echoes = delivery(
        echo_event(pmid, "hello from the hub", metadata=f"hub:{message_id}", app_id=int(APP_ID)),
        echo_event("m_page", "answered from the page inbox", app_id=263902037430900),
    )
    for _ in range(2):  # redelivered: still one message each
        response = await post(client, inbox, echoes)
        assert response.status == 200, await response.text()
    stored = await rows(hub)
    assert [(r["direction"], r["content"], r["status"]) for r in stored] == [
        ("inbound", "hi", "received"),
        ("outbound", "hello from the hub", "sent"),
        ("outbound", "answered from the page inbox", "sent"),
    ]
    assert stored[2]["sender_type"] == "integration"
    assert await count(hub, "contacts") == 1
    await asyncio.sleep(0.2)
    assert len(messenger_api(mock).sent) == 1  # an echo is never sent again


async def test_delivery_and_read_watermarks_move_the_sent_messages(
    client: Client, hub: Hub, mock: ProviderMock, inbox: str
) -> None:
    assert (await post(client, inbox, delivery(text_event("m_in", "hi")))).status == 200
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    ids = [await agent_message(hub, conversation_id, f"reply {n}") for n in range(2)]
    for message_id in ids:
        await wait_for_status(hub, message_id, "sent")
    delivered = delivery(event("delivery", {"watermark": now_ms() + 1000}))
    assert (await post(client, inbox, delivered)).status == 200
    for message_id in ids:
        await wait_for_status(hub, message_id, "delivered")
    read = delivery(event("read", {"watermark": now_ms() + 1000}))
    assert (await post(client, inbox, read)).status == 200
    for message_id in ids:
        await wait_for_status(hub, message_id, "read")


async def test_the_senders_profile_is_fetched_once(
    client: Client, hub: Hub, mock: ProviderMock, inbox: str
) -> None:
    messenger_api(mock).profiles[PSID] = {
        "first_name": "Nimal",
        "last_name": "Perera",
        "profile_pic": "https://platform-lookaside.fbsbx.com/platform/profilepic/?psid=1",
    }
    for n in range(3):
        response = await post(client, inbox, delivery(text_event(f"m_p{n}", "hi")))
        assert response.status == 200
    contact = await hub.pool.fetchrow("SELECT name, attributes FROM contacts")
    assert contact is not None
    assert contact["name"] == "Nimal Perera"
    assert contact["attributes"]["avatar_url"].startswith("https://platform-lookaside")
    assert len(mock.of("meta.profile")) == 1


def outbound(last_inbound: datetime | None, content: str = "hi") -> OutboundMessage:
    return OutboundMessage(
        message_id="01HUB",
        conversation_id="c",
        to=PSID,
        content=content,
        last_inbound_at=last_inbound,
    )


def test_the_window_decides_the_messaging_type() -> None:
    now = datetime.now(UTC)
    settings: dict[str, Any] = {}
    at = now.timestamp()
    assert graph.messaging_type(outbound(now - timedelta(hours=1)), settings, "Messenger", at) == {
        "messaging_type": "RESPONSE"
    }
    with pytest.raises(SendError) as closed:
        graph.messaging_type(outbound(now - timedelta(hours=30)), settings, "Messenger", at)
    assert closed.value.code == "window_closed" and "HUMAN_AGENT" in closed.value.message
    human = {"human_agent": True}
    assert graph.messaging_type(outbound(now - timedelta(days=3)), human, "Messenger", at) == {
        "messaging_type": "MESSAGE_TAG",
        "tag": "HUMAN_AGENT",
    }
    with pytest.raises(SendError) as late:
        graph.messaging_type(outbound(now - timedelta(days=8)), human, "Messenger", at)
    assert late.value.code == "window_closed" and "7 days" in late.value.message


async def test_a_reply_after_24_hours_goes_with_the_human_agent_tag(
    client: Client, hub: Hub, mock: ProviderMock
) -> None:
    inbox = await meta_inbox(hub, mock, human_agent=True)
    old = text_event("m_old", "are you there?")
    old["timestamp"] = now_ms() - 30 * 3600 * 1000
    assert (await post(client, inbox, delivery(old))).status == 200
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    message_id = await agent_message(hub, conversation_id, "Sorry for the wait")
    await wait_for_status(hub, message_id, "sent")
    sent = messenger_api(mock).sent[-1]
    assert sent["messaging_type"] == "MESSAGE_TAG" and sent["tag"] == "HUMAN_AGENT"


async def test_without_the_tag_a_late_reply_fails_with_a_clear_error(
    client: Client, hub: Hub, mock: ProviderMock, inbox: str
) -> None:
    old = text_event("m_old", "are you there?")
    old["timestamp"] = now_ms() - 30 * 3600 * 1000
    assert (await post(client, inbox, delivery(old))).status == 200
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    message_id = await agent_message(hub, conversation_id, "Sorry for the wait")
    row = await wait_for_status(hub, message_id, "failed")
    assert row["error_code"] == "window_closed" and "HUMAN_AGENT" in row["error_message"]
    assert not mock.of("meta.messages")


async def test_an_agents_file_is_uploaded_with_the_send(
    client: Client, hub: Hub, mock: ProviderMock, inbox: str
) -> None:
    assert (
        await post(client, inbox, delivery(text_event("m_in", "send the invoice")))
    ).status == 200
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    pdf = b"%PDF-1.4 invoice"
    form = aiohttp.FormData()
    form.add_field("content", "Here it is")
    form.add_field("file", pdf, filename="invoice.pdf", content_type="application/pdf")
    reply = await client.post(
        f"/api/v1/conversations/{conversation_id}/attachments", data=form, headers=AUTH
    )
    assert reply.status == 201, await reply.text()
    message_id = (await reply.json())["id"]
    await wait_for_status(hub, message_id, "sent")
    first, second = messenger_api(mock).sent
    assert first["filedata"]["data"] == pdf and first["message"]["attachment"]["type"] == "file"
    assert second["message"]["text"] == "Here it is"


def test_settings_are_checked() -> None:
    channel = MessengerChannel()
    channel.check_settings({"page_id": PAGE_ID})
    for bad in (
        {},
        {"page_id": "my-page"},
        {"page_id": PAGE_ID, "api_base_url": "file:///etc"},
        {"page_id": PAGE_ID, "api_version": "23"},
        {"page_id": PAGE_ID, "app_id": "abc"},
        {"page_id": PAGE_ID, "human_agent": "maybe"},
    ):
        with pytest.raises(SettingsInvalid):
            channel.check_settings(bad)
    assert FLAVOUR.object == "page"


async def test_a_reply_offers_quick_replies(
    client: Client, hub: Hub, mock: ProviderMock, inbox: str
) -> None:
    assert (await post(client, inbox, delivery(text_event("m_in", "which colour?")))).status == 200
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    reply = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"content": "Pick one", "quick_replies": ["Red", "Blue"]},
        headers=AUTH,
    )
    assert reply.status == 201, await reply.text()
    await wait_for_status(hub, (await reply.json())["id"], "sent")
    sent = messenger_api(mock).sent[-1]["message"]
    assert sent["text"] == "Pick one"
    assert sent["quick_replies"] == [
        {"content_type": "text", "title": "Red", "payload": "Red"},
        {"content_type": "text", "title": "Blue", "payload": "Blue"},
    ]
    for bad in (
        {"content": "Pick", "quick_replies": ["x" * 21]},
        {"content": "Pick", "quick_replies": [str(n) for n in range(14)]},
        {"content": "a note", "private": True, "quick_replies": ["Red"]},
    ):
        refused = await client.post(
            f"/api/v1/conversations/{conversation_id}/messages", json=bad, headers=AUTH
        )
        assert refused.status in (400, 422), (bad, await refused.text())
    assert await hub.pool.fetchval("SELECT count(*) FROM messages") == 2
