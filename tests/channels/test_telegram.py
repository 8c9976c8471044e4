"""Telegram against the channel conformance suite, and what is Telegram's own: the secret-token
check, setWebhook done by the hub, every inbound kind (photos by their largest size, documents,
voice, video, stickers, locations, contacts, edits, quoted replies, /start payloads), sends of
text, photos and documents with reply threading, and 429 retry_after honoured."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from channels._base import InboxContext, SendError
from channels.telegram import TelegramChannel, bot_api
from channels.telegram.manifest import MANIFEST
from channels.telegram.part import TelegramWebhooks, telegram_of, webhook_url
from hub import provider_media
from hub.app import Hub
from tests.channels.conformance import (
    AUTH,
    ChannelConformance,
    Harness,
    Request,
    agent_message,
    wait_for_status,
)
from tests.channels.conftest import PUBLIC_URL
from tests.support.provider_mock import ProviderMock
from tests.support.telegram_mock import (
    BLOCKED,
    BOT_TOKEN,
    CHAT_ID,
    JSON,
    SECRET_HEADER,
    TOO_MANY,
    TelegramApi,
    message,
    posted,
    telegram_api,
    telegram_inbox,
    update,
    webhook_path,
)

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]


@pytest.fixture
async def mock() -> AsyncIterator[ProviderMock]:
    provider = ProviderMock(TelegramApi())
    await provider.start()
    yield provider
    await provider.close()


class TelegramHarness(Harness):
    manifest = MANIFEST
    provider_statuses = ()
    reports_statuses = False
    unknown_status_refused = False  # updates the hub does not take are skipped, not refused
    send_operation = "telegram.sendMessage"
    transient_failure = TOO_MANY
    transient_code = "429"
    permanent_failure = BLOCKED
    permanent_code = "403"
    delivered_status = ""
    sent_status = ""
    secret = ""

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}
        self._next = itertools.count(1)

    async def create_inbox(self, hub: Hub, mock: ProviderMock) -> str:
        inbox_id, self.secret = await telegram_inbox(hub, mock)
        return inbox_id

    def _number(self, provider_message_id: str) -> int:
        return self._numbers.setdefault(provider_message_id, next(self._next))

    def stored_id(self, provider_message_id: str) -> str:
        return f"{CHAT_ID}:{self._number(provider_message_id)}"

    def _request(self, payload: Any, secret: str | None = None) -> Request:
        path, body, headers = posted(self.inbox_id, secret or self.secret, payload)
        return Request(path, body, headers)

    def inbound(self, provider_message_id: str, text: str = "hello") -> Request:
        number = self._number(provider_message_id)
        return self._request({"update_id": 500 + number, "message": message(number, text)})

    def forged(self, provider_message_id: str) -> list[tuple[str, Request]]:
        good = self.inbound(provider_message_id)
        path, body = good.path, good.body
        return [
            ("no secret token", Request(path, body, JSON)),
            ("an empty secret token", Request(path, body, {**JSON, SECRET_HEADER: ""})),
            ("a wrong secret token", Request(path, body, {**JSON, SECRET_HEADER: "guess"})),
            ("the bot token instead", Request(path, body, {**JSON, SECRET_HEADER: BOT_TOKEN})),
            (
                "half of the secret",
                Request(path, body, {**JSON, SECRET_HEADER: self.secret[: len(self.secret) // 2]}),
            ),
        ]

    def malformed(self) -> list[tuple[str, Request]]:
        path = webhook_path(self.inbox_id)

        def with_message(**fields: Any) -> Any:
            item = message(99)
            for key, value in fields.items():
                if value is None:
                    item.pop(key, None)
                else:
                    item[key] = value
            return update(message=item)

        form = self._request(b"update_id=1")
        return [
            ("not JSON", self._request(b"{not json")),
            ("a JSON array", self._request(b"[]")),
            ("no update_id", self._request({"message": message(1)})),
            ("a message without a chat", self._request(with_message(chat=None))),
            ("a message without an id", self._request(with_message(message_id=None))),
            ("a negative message id", self._request(with_message(message_id=-5))),
            ("date is not a time", self._request(with_message(date="today"))),
            ("NUL in the text", self._request(with_message(text="a\x00b"))),
            (
                "a file id that is a path",
                self._request(with_message(document={"file_id": "../../getMe"})),
            ),
            (
                "a form body",
                Request(path, form.body, {**form.headers, "Content-Type": "text/plain"}),
            ),
            ("GET", Request(path, b"", {}, method="GET")),
        ]

    def status(self, provider_message_id: str, provider_status: str) -> Request:
        # Telegram reports no statuses; an update kind the hub does not take stands in
        return self._request(update(callback_query={"id": "1", "data": provider_status}))


class TestTelegramConformance(ChannelConformance):
    @pytest.fixture
    def harness(self) -> Harness:
        return TelegramHarness()


# -- Telegram's own ------------------------------------------------------------------------------


@pytest.fixture
async def inbox(hub: Hub, mock: ProviderMock) -> tuple[str, str]:
    return await telegram_inbox(hub, mock)


async def post(client: Client, inbox: tuple[str, str], payload: Any) -> Any:
    path, body, headers = posted(inbox[0], inbox[1], payload)
    return await client.post(path, data=body, headers=headers)


async def rows(hub: Hub) -> list[dict[str, Any]]:
    found = await hub.pool.fetch(
        """SELECT content, content_type, attachments, provider_message_id FROM messages
            ORDER BY id"""
    )
    return [dict(r) for r in found]


async def test_the_hub_sets_the_webhook_when_an_inbox_is_made_or_changed(
    client: Client, hub: Hub, mock: ProviderMock
) -> None:
    part = telegram_of(hub)
    assert isinstance(part, TelegramWebhooks)  # running in this hub
    registrar = TelegramWebhooks()  # driven by hand here: no waiting for its timer
    api = telegram_api(mock)
    inbox_id, secret = await telegram_inbox(hub, mock)
    async with aiohttp.ClientSession() as http:
        await registrar.sync(hub, http)
        ours = [w for w in api.webhooks if w["url"].endswith(inbox_id)]
        assert ours[-1]["url"] == webhook_url(PUBLIC_URL, inbox_id)
        assert ours[-1]["secret_token"] == secret
        assert ours[-1]["allowed_updates"] == ["message", "edited_message"]
        count = len(api.webhooks)
        await registrar.sync(hub, http)  # nothing changed: not set again
        assert len(api.webhooks) == count
        changed = await client.patch(
            f"/api/v1/inboxes/{inbox_id}",
            json={"credentials": {"webhook_secret": "rotated_secret_0123456789"}},
            headers=AUTH,
        )
        assert changed.status == 200, await changed.text()
        await registrar.sync(hub, http)
        assert api.webhooks[-1]["secret_token"] == "rotated_secret_0123456789"
    assert registrar.health()["telegram"][inbox_id] == "registered"


async def test_a_refused_token_is_reported_and_tried_again(hub: Hub, mock: ProviderMock) -> None:
    inbox_id, _ = await telegram_inbox(hub, mock)
    telegram_api(mock).tokens.clear()
    registrar = TelegramWebhooks()
    async with aiohttp.ClientSession() as http:
        await registrar.sync(hub, http)
    assert registrar.health()["telegram"][inbox_id].startswith("not registered: 401")


async def test_every_inbound_kind(
    client: Client, hub: Hub, mock: ProviderMock, inbox: tuple[str, str]
) -> None:
    api = telegram_api(mock)
    small = api.add_file(b"small", "photos/file_1.jpg")
    large = api.add_file(b"\xff\xd8\xff large photo", "photos/file_2.jpg")
    pdf = api.add_file(b"%PDF-1.4", "documents/file_3.pdf")
    voice = api.add_file(b"OggS voice", "voice/file_4.oga")
    video = api.add_file(b"\x00\x00\x00 ftyp", "videos/file_5.mp4")
    sticker = api.add_file(b"RIFF webp", "stickers/file_6.webp")
    updates = [
        update(message=message(1, "/start promo_2026")),
        update(message=message(2, "Where is my order?")),
        update(
            message=message(
                3,
                None,
                caption="the receipt",
                photo=[
                    {
                        "file_id": small,
                        "file_unique_id": "s",
                        "width": 90,
                        "height": 90,
                        "file_size": 5,
                    },
                    {
                        "file_id": large,
                        "file_unique_id": "l",
                        "width": 1280,
                        "height": 960,
                        "file_size": 17,
                    },
                ],
            )
        ),
        update(
            message=message(
                4,
                None,
                document={
                    "file_id": pdf,
                    "file_unique_id": "d",
                    "file_name": "invoice.pdf",
                    "mime_type": "application/pdf",
                    "file_size": 8,
                },
            )
        ),
        update(
            message=message(
                5,
                None,
                voice={
                    "file_id": voice,
                    "file_unique_id": "v",
                    "duration": 3,
                    "mime_type": "audio/ogg",
                },
            )
        ),
        update(
            message=message(
                6,
                None,
                video={
                    "file_id": video,
                    "file_unique_id": "w",
                    "width": 640,
                    "height": 480,
                    "duration": 4,
                },
            )
        ),
        update(
            message=message(
                7,
                None,
                sticker={
                    "file_id": sticker,
                    "file_unique_id": "k",
                    "type": "regular",
                    "width": 512,
                    "height": 512,
                    "is_animated": False,
                    "is_video": False,
                    "emoji": "\U0001f44d",
                },
            )
        ),
        update(message=message(8, None, location={"latitude": 6.9271, "longitude": 79.8612})),
        update(
            message=message(
                9, None, contact={"phone_number": "+94771234567", "first_name": "Nimal"}
            )
        ),
        update(
            message=message(
                10,
                "Yes, that one",
                reply_to_message={
                    "message_id": 2,
                    "date": 1,
                    "chat": {"id": CHAT_ID, "type": "private"},
                    "text": "Where is my order?\nline two",
                },
            )
        ),
        update(edited_message=message(2, "Where is my parcel?", edit_date=1_900_000_000)),
    ]
    for item in updates:
        response = await post(client, inbox, item)
        assert response.status == 200, await response.text()
    stored = await rows(hub)
    shown = [(r["content_type"], r["content"]) for r in stored]
    assert shown == [
        ("start", "Started the bot: promo_2026"),
        ("text", "Where is my parcel?"),  # edited: the message itself shows the new text
        ("text", "the receipt"),
        ("text", None),
        ("text", None),
        ("text", None),
        ("text", "Sticker \U0001f44d"),
        ("location", "6.9271,79.8612"),
        ("contacts", "Nimal: +94771234567"),
        ("text", "> Where is my order?\nYes, that one"),
    ]
    sizes = [[a["size"] for a in r["attachments"]] for r in stored[2:7]]
    files = (b"\xff\xd8\xff large photo", b"%PDF-1.4", b"OggS voice", b"\x00\x00\x00 ftyp")
    # the largest photo (by the size Telegram gives), and every file
    assert sizes == [[len(f)] for f in (*files, b"RIFF webp")]
    assert stored[3]["attachments"][0]["filename"] == "invoice.pdf"
    key = stored[2]["attachments"][0]["url"].removeprefix("/api/v1/media/")
    assert await hub.pool.fetchval("SELECT sha256 FROM media WHERE key = $1", key) == (
        hashlib.sha256(b"\xff\xd8\xff large photo").hexdigest()
    )
    contact = await hub.pool.fetchrow("SELECT name FROM contacts")
    assert contact is not None and contact["name"] == "Kamala Silva"
    assert await hub.pool.fetchval("SELECT count(*) FROM conversations") == 1


async def test_a_start_payload_is_kept_on_the_conversation(
    client: Client, hub: Hub, inbox: tuple[str, str]
) -> None:
    first = update(message=message(1, "/start promo_2026"))
    for item in (first, first):  # Telegram delivers again: no second change
        response = await post(client, inbox, item)
        assert response.status == 200, await response.text()
    conversation_id = (await response.json())["messages"][0]["conversation_id"]
    shown = await client.get(f"/api/v1/conversations/{conversation_id}", headers=AUTH)
    assert shown.status == 200
    assert (await shown.json())["attributes"] == {"start_payload": "promo_2026"}
    # a later deep link replaces it; a bare /start and an edit to a /start change nothing
    for item in (
        update(message=message(2, "/start")),
        update(edited_message=message(2, "/start other", edit_date=1_900_000_000)),
        update(message=message(3, "/start winter_sale")),
    ):
        response = await post(client, inbox, item)
        assert response.status == 200, await response.text()
    shown = await client.get(f"/api/v1/conversations/{conversation_id}", headers=AUTH)
    assert (await shown.json())["attributes"] == {"start_payload": "winter_sale"}
    # agents' sockets hear each change: once the last is in the replay log (kept in order per
    # conversation), every earlier one is, and the redelivery added none
    changes: list[Any] = []
    for _ in range(200):
        changes = await hub.pool.fetch(
            """SELECT event::text AS payload FROM event_log
                WHERE type = 'conversation.attributes_changed' ORDER BY id"""
        )
        if changes and "winter_sale" in str(changes[-1]["payload"]):
            break
        await asyncio.sleep(0.05)
    assert len(changes) == 2, changes
    listed = await client.get("/api/v1/conversations", headers=AUTH)
    (row,) = (await listed.json())["data"]
    assert row["attributes"] == {"start_payload": "winter_sale"}


async def test_an_edit_is_shown_on_the_message_it_changes(
    client: Client, hub: Hub, inbox: tuple[str, str]
) -> None:
    response = await post(client, inbox, update(message=message(5, "Where is my order?")))
    assert response.status == 200
    (stored,) = (await response.json())["messages"]
    first = update(edited_message=message(5, "Where is my parcel?", edit_date=1_900_000_000))
    second = update(edited_message=message(5, "Where are my parcels?", edit_date=1_900_000_060))
    for item in (first, first, second, first):  # redelivered, then late: no change either time
        response = await post(client, inbox, item)
        assert response.status == 200, await response.text()
    assert await hub.pool.fetchval("SELECT count(*) FROM messages") == 1
    page = await client.get(
        f"/api/v1/conversations/{stored['conversation_id']}/messages", headers=AUTH
    )
    (shown,) = (await page.json())["data"]
    assert shown["content"] == "Where are my parcels?"
    assert shown["edited_at"].startswith("2030-03-17T17:47:40")
    assert [(e["edit_id"], e["previous_content"]) for e in shown["edits"]] == [
        (f"{CHAT_ID}:5:edit:1900000000", "Where is my order?"),
        (f"{CHAT_ID}:5:edit:1900000060", "Where is my parcel?"),
    ]
    # agents' sockets hear each applied edit as message.edited, in order
    edits: list[Any] = []
    for _ in range(200):
        edits = await hub.pool.fetch(
            """SELECT event::jsonb -> 'payload' AS payload FROM event_log
                WHERE type = 'message.edited' ORDER BY id"""
        )
        if len(edits) >= 2:
            break
        await asyncio.sleep(0.05)
    assert [(e["payload"]["content"], e["payload"]["previous_content"]) for e in edits] == [
        ("Where is my parcel?", "Where is my order?"),
        ("Where are my parcels?", "Where is my parcel?"),
    ]
    assert {e["payload"]["message_id"] for e in edits} == {stored["id"]}


async def test_a_file_over_the_bot_download_limit_is_shown_as_not_received(
    client: Client, hub: Hub, mock: ProviderMock, inbox: tuple[str, str]
) -> None:
    big = telegram_api(mock).add_file(b"x", "videos/big.mp4", size=30 * 1024 * 1024)
    item = message(1, None, video={"file_id": big, "file_unique_id": "b", "width": 1,
                                   "height": 1, "duration": 1})  # fmt: skip
    response = await post(client, inbox, update(message=item))
    assert response.status == 200
    (row,) = await rows(hub)
    assert row["attachments"][0]["url"] == ""
    assert row["attachments"][0]["unavailable"] == "too_large"
    assert await hub.pool.fetchval("SELECT count(*) FROM media") == 0
    assert not mock.of("telegram.file")


async def test_a_file_over_the_media_store_limit_is_marked_too_large(
    client: Client,
    hub: Hub,
    mock: ProviderMock,
    inbox: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Telegram lets the bot download it, but the media store keeps provider files only up to
    its limit: the message is stored (200, never a 5xx), the file marked, the reason logged,
    and a redelivery changes nothing."""
    monkeypatch.setattr(provider_media, "MAX_MEDIA_BYTES", 1024)
    big = telegram_api(mock).add_file(b"%PDF" + b"x" * 4096, "documents/big.pdf")
    document = {"file_id": big, "file_unique_id": "b", "file_name": "big.pdf",
                "mime_type": "application/pdf"}  # fmt: skip
    item = update(message=message(1, None, caption="the contract", document=document))
    with caplog.at_level(logging.WARNING, logger="hub.provider_media"):
        for _ in range(2):
            response = await post(client, inbox, item)
            assert response.status == 200, await response.text()
    (row,) = await rows(hub)
    assert row["content"] == "the contract"
    assert row["attachments"] == [
        {
            "url": "",
            "content_type": "application/pdf",
            "filename": "big.pdf",
            "size": None,
            "unavailable": "too_large",
        }
    ]
    assert await hub.pool.fetchval("SELECT count(*) FROM media") == 0
    kept = [p for p in (hub.config.data_dir / "media").rglob("*") if p.is_file()]
    assert not kept, "no file, whole or partial, is kept"
    logged = [r for r in caplog.records if r.getMessage().startswith("provider media")]
    assert logged and getattr(logged[0], "unavailable", None) == "too_large"
    assert "larger than 1024 bytes" in getattr(logged[0], "reason", "")


async def test_group_messages_and_other_updates_are_skipped(
    client: Client, hub: Hub, inbox: tuple[str, str]
) -> None:
    group = message(1, "hi all")
    group["chat"] = {"id": -1001234567890, "type": "supergroup", "title": "Shop"}
    for item in (update(message=group), update(my_chat_member={"chat": {"id": 1}})):
        response = await post(client, inbox, item)
        assert response.status == 200
    assert await hub.pool.fetchval("SELECT count(*) FROM messages") == 0


async def test_replies_thread_and_files_go_as_photos_or_documents(
    client: Client, hub: Hub, mock: ProviderMock
) -> None:
    inbox = await telegram_inbox(hub, mock, quote_replies=True)
    assert (await post(client, inbox, update(message=message(41, "Send the photo")))).status == 200
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    message_id = await agent_message(hub, conversation_id, "Coming up")
    row = await wait_for_status(hub, message_id, "sent")
    assert row["provider_message_id"].startswith(f"{CHAT_ID}:")
    api = telegram_api(mock)
    method, params = api.sent[-1]
    assert method == "sendMessage" and params["reply_parameters"]["message_id"] == 41
    for name, content_type, data, expected in (
        ("photo.png", "image/png", b"\x89PNG\r\n\x1a\n", "sendPhoto"),
        ("terms.pdf", "application/pdf", b"%PDF-1.4", "sendDocument"),
    ):
        form = aiohttp.FormData()
        form.add_field("content", f"here: {name}")
        form.add_field("file", data, filename=name, content_type=content_type)
        reply = await client.post(
            f"/api/v1/conversations/{conversation_id}/attachments",
            data=form,
            headers=AUTH,
        )
        assert reply.status == 201, await reply.text()
        await wait_for_status(hub, (await reply.json())["id"], "sent")
        method, params = api.sent[-1]
        field = "photo" if expected == "sendPhoto" else "document"
        assert method == expected and params[field]["data"] == data
        assert params["caption"] == f"here: {name}"


async def test_a_429_says_how_long_to_wait(mock: ProviderMock) -> None:
    """The dispatcher waits ``retry_after`` (tests/channels/test_outbound.py shows it does)."""
    mock.fail_next("telegram.sendMessage", 1, TOO_MANY)
    inbox = InboxContext(
        id="i",
        account_id="a",
        channel="telegram",
        name="t",
        reopen_policy="reopen",
        settings={"api_base_url": mock.url},
        secrets={"bot_token": BOT_TOKEN, "webhook_secret": "s"},
    )
    telegram_api(mock).token(BOT_TOKEN)
    async with aiohttp.ClientSession() as http:
        with pytest.raises(SendError) as refused:
            await bot_api.call(http, inbox, "sendMessage", json={"chat_id": CHAT_ID, "text": "x"})
        assert refused.value.retryable and refused.value.retry_after == 1
        assert refused.value.code == "429"
        await bot_api.call(http, inbox, "sendMessage", json={"chat_id": CHAT_ID, "text": "x"})


async def test_a_429_then_success_is_sent_once(
    client: Client, hub: Hub, mock: ProviderMock, inbox: tuple[str, str]
) -> None:
    assert (await post(client, inbox, update(message=message(1, "hi")))).status == 200
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    mock.fail_next("telegram.sendMessage", 1, TOO_MANY)
    message_id = await agent_message(hub, conversation_id, "Hello!")
    await wait_for_status(hub, message_id, "sent")
    await asyncio.sleep(0.1)
    assert len(mock.of("telegram.sendMessage")) == 2
    assert len(telegram_api(mock).sent) == 1


def test_settings_are_checked() -> None:
    channel = TelegramChannel()
    channel.check_settings({})
    for bad in ({"api_base_url": "ftp://x"}, {"quote_replies": "maybe"}):
        with pytest.raises(ValueError):
            channel.check_settings(bad)


async def test_a_contact_made_by_hand_with_a_telegram_id_is_the_one_messages_land_on(
    client: Client, hub: Hub, inbox: tuple[str, str]
) -> None:
    refused = await client.post(
        "/api/v1/contacts",
        json={"identities": [{"channel": "telegram", "address": "@kamala_s"}]},
        headers=AUTH,
    )
    assert refused.status == 422
    assert (await refused.json())["error"]["code"] == "invalid_identity"
    made = await client.post(
        "/api/v1/contacts",
        json={"name": "Kamala", "identities": [{"channel": "telegram", "address": f" {CHAT_ID} "}]},
        headers=AUTH,
    )
    assert made.status == 201, await made.text()
    contact = await made.json()
    assert contact["identities"] == [{"channel": "telegram", "address": str(CHAT_ID)}]
    response = await post(client, inbox, update(message=message(1, "hi")))
    assert (await response.json())["messages"][0]["contact_id"] == contact["id"]


async def test_quick_replies_are_a_one_time_keyboard(
    client: Client, hub: Hub, mock: ProviderMock, inbox: tuple[str, str]
) -> None:
    assert (await post(client, inbox, update(message=message(1, "size?")))).status == 200
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    reply = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"content": "Which size?", "quick_replies": ["S", "M", "L"]},
        headers=AUTH,
    )
    assert reply.status == 201, await reply.text()
    await wait_for_status(hub, (await reply.json())["id"], "sent")
    method, params = telegram_api(mock).sent[-1]
    assert method == "sendMessage"
    assert params["reply_markup"] == {
        "keyboard": [[{"text": "S"}], [{"text": "M"}], [{"text": "L"}]],
        "one_time_keyboard": True,
        "resize_keyboard": True,
    }
