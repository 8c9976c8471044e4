"""WhatsApp Cloud API against the channel conformance suite, plus what is WhatsApp's own: the GET
handshake, every inbound message type, deliveries with many entries and changes, media in two
Graph steps, templates and the 24-hour window, and backoff on throughput errors."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from channels._base import InboxContext, SettingsInvalid, Template, WebhookRequest
from channels.whatsapp_cloud import WhatsAppCloudChannel
from channels.whatsapp_cloud.graph import Backoff, media_host_allowed
from channels.whatsapp_cloud.manifest import MANIFEST
from hub.actions.messages import MessageRefused, create_agent_message
from hub.app import Hub
from hub.store.db import in_transaction
from tests.channels.conformance import (
    AUTH,
    ChannelConformance,
    Harness,
    Request,
    agent_message,
    count,
    status_events,
    wait_for_status,
)
from tests.channels.twilio_support import twilio_inbox
from tests.support.graph_mock import (
    ACCESS_TOKEN,
    APP_SECRET,
    CUSTOMER,
    CUSTOMER_WA_ID,
    INVALID_NUMBER,
    JSON,
    OTHER_PHONE_NUMBER_ID,
    PAIR_RATE,
    PHONE_NUMBER_ID,
    SERVER_ERROR,
    THROUGHPUT,
    TOO_MANY_REQUESTS,
    UNAVAILABLE,
    VERIFY_TOKEN,
    VERSION,
    WINDOW_CLOSED,
    GraphApi,
    fixture,
    graph_api,
    message_webhook,
    signed,
    status_webhook,
    value_of,
    webhook_path,
    whatsapp_inbox,
    wire,
)
from tests.support.provider_mock import Failure, ProviderMock, TwilioApi

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]
SIGNATURE = "X-Hub-Signature-256"
DAY = 24 * 3600


@pytest.fixture
async def mock() -> AsyncIterator[ProviderMock]:
    provider = ProviderMock(GraphApi(), TwilioApi())
    await provider.start()
    yield provider
    await provider.close()


class WhatsAppHarness(Harness):
    manifest = MANIFEST
    unknown_status_refused = False  # Meta batches statuses with messages (see inbound._status)
    provider_statuses = ("sent", "delivered", "read", "failed")
    send_operation = "graph.messages"
    transient_failure = SERVER_ERROR
    transient_code = "131000"
    permanent_failure = INVALID_NUMBER
    permanent_code = "131026"
    delivered_status = "delivered"
    sent_status = "sent"

    async def create_inbox(self, hub: Hub, mock: ProviderMock) -> str:
        return await whatsapp_inbox(hub, mock)

    def _request(self, payload: Any, **kwargs: Any) -> Request:
        path, body, headers = signed(self.inbox_id, payload, **kwargs)
        return Request(path, body, headers)

    def inbound(self, provider_message_id: str, text: str = "hello") -> Request:
        return self._request(message_webhook(wamid=provider_message_id, text=text))

    def forged(self, provider_message_id: str) -> list[tuple[str, Request]]:
        payload = message_webhook(wamid=provider_message_id)
        good = self._request(payload)
        path = good.path
        tampered = wire(message_webhook(wamid=provider_message_id, text="send me a refund"))
        sha1 = hmac.new(APP_SECRET.encode(), good.body, hashlib.sha1).hexdigest()
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
        path = webhook_path(self.inbox_id)

        def message(**fields: Any) -> Any:
            payload = message_webhook(wamid="wamid.malformed")
            first = value_of(payload)["messages"][0]
            for key, value in fields.items():
                if value is None:
                    first.pop(key, None)
                else:
                    first[key] = value
            return payload

        no_metadata = message_webhook(wamid="wamid.m2")
        del value_of(no_metadata)["metadata"]
        bad_media = message_webhook("image", wamid="wamid.m3")
        value_of(bad_media)["messages"][0]["image"]["id"] = "../../me/accounts"
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        signed_form = self._request(b"object=whatsapp_business_account")
        return [
            ("not JSON", self._request(b"{not json")),
            ("a JSON array", self._request(b"[]")),
            ("no entry", self._request({"object": "whatsapp_business_account"})),
            (
                "an empty entry list",
                self._request({"object": "whatsapp_business_account", "entry": []}),
            ),
            (
                "entry is not a list",
                self._request({"object": "whatsapp_business_account", "entry": {}}),
            ),
            ("another object", self._request({**message(), "object": "page"})),
            ("no metadata", self._request(no_metadata)),
            ("a message without an id", self._request(message(id=None))),
            ("from is not a number", self._request(message(**{"from": "ACME"}))),
            ("timestamp is not a time", self._request(message(timestamp="yesterday"))),
            ("a text message without text", self._request(message(text=None))),
            ("an image message without image", self._request(message(type="image"))),
            ("a media id that is a path", self._request(bad_media)),
            ("NUL in the text", self._request(message(text={"body": "a\x00b"}))),
            ("an id that is too long", self._request(message(id="wamid." + "x" * 300))),
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
        return self._request(status_webhook(provider_message_id, provider_status))


class TestWhatsAppCloudConformance(ChannelConformance):
    @pytest.fixture
    def harness(self) -> Harness:
        return WhatsAppHarness()


@pytest.fixture
async def inbox(hub: Hub, mock: ProviderMock) -> str:
    return await whatsapp_inbox(hub, mock)


async def post(client: Client, inbox_id: str, payload: Any) -> Any:
    path, body, headers = signed(inbox_id, payload)
    return await client.post(path, data=body, headers=headers)


async def reply(client: Client, conversation_id: str, content: str) -> str:
    response = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"content": content},
        headers=AUTH,
    )
    assert response.status == 201, await response.text()
    message_id: str = (await response.json())["id"]
    return message_id


async def send_template(hub: Hub, conversation_id: str, template: Template, **options: Any) -> str:
    """An agent's template reply, through the action the REST route and sockets share."""
    return await agent_message(hub, conversation_id, template=template, **options)


# -- the GET handshake ---------------------------------------------------------------------------


async def test_the_verification_handshake_answers_the_challenge(client: Client, inbox: str) -> None:
    query = f"?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={VERIFY_TOKEN}"
    response = await client.get(webhook_path(inbox) + query)
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert await response.text() == "1158201444"


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("?hub.mode=subscribe&hub.challenge=1&hub.verify_token=wrong", 403, "invalid_verify_token"),
        ("?hub.mode=subscribe&hub.challenge=1", 403, "invalid_verify_token"),
        (
            f"?hub.mode=unsubscribe&hub.challenge=1&hub.verify_token={VERIFY_TOKEN}",
            400,
            "invalid_mode",
        ),
        (f"?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}", 400, "invalid_challenge"),
        (
            f"?hub.mode=subscribe&hub.challenge=%3Cscript%3E&hub.verify_token={VERIFY_TOKEN}",
            400,
            "invalid_challenge",
        ),
        ("", 400, "missing_field"),
    ],
)
async def test_a_wrong_handshake_is_refused(
    client: Client, inbox: str, query: str, status: int, code: str
) -> None:
    response = await client.get(webhook_path(inbox) + query)
    assert response.status == status
    assert (await response.json())["error"]["code"] == code


async def test_an_inbox_without_secrets_refuses_everything(
    client: Client, hub: Hub, inbox: str
) -> None:
    await hub.pool.execute(
        "UPDATE inboxes SET secrets = $2 WHERE id = $1",
        inbox,
        hub.box.seal({"access_token": ACCESS_TOKEN, "app_secret": "", "verify_token": ""}),
    )
    path, body, _ = signed(inbox, message_webhook())
    unsigned_secret = hmac.new(b"", body, hashlib.sha256).hexdigest()
    response = await client.post(
        path, data=body, headers={**JSON, SIGNATURE: f"sha256={unsigned_secret}"}
    )
    assert response.status == 403
    handshake = await client.get(path + "?hub.mode=subscribe&hub.challenge=1&hub.verify_token=")
    assert handshake.status == 403
    assert await count(hub, "messages") == 0


# -- inbound -------------------------------------------------------------------------------------


async def test_a_text_is_stored_with_the_sender_as_a_phone_contact(
    client: Client, hub: Hub, inbox: str
) -> None:
    sent_at = int(time.time()) - 60
    response = await post(client, inbox, message_webhook(at=sent_at))
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert len(answer["messages"]) == 1 and not answer["messages"][0]["duplicate"]
    row = await hub.pool.fetchrow(
        """SELECT m.content, m.content_type, m.provider_message_id, m.sent_at, ct.name,
                  ci.channel, ci.address
             FROM messages m JOIN conversations c ON c.id = m.conversation_id
             JOIN contacts ct ON ct.id = c.contact_id
             JOIN contact_identities ci ON ci.contact_id = c.contact_id"""
    )
    assert row is not None
    assert row["content"] == "ආයුබෝවන්! මගේ ඇණවුම කොහෙද?"
    assert row["content_type"] == "text"
    assert row["provider_message_id"] == value_of(fixture("text"))["messages"][0]["id"]
    assert row["sent_at"] == datetime.fromtimestamp(sent_at, UTC)
    assert row["name"] == "Nimal Perera"
    assert (row["channel"], row["address"]) == ("phone", CUSTOMER)


def _context(**settings: Any) -> InboxContext:
    return InboxContext(
        "01INBOX",
        "01ACCOUNT",
        "whatsapp_cloud",
        "w",
        "reopen",
        {"phone_number_id": PHONE_NUMBER_ID, **settings},
        {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN, "access_token": ACCESS_TOKEN},
    )


async def parse(payload: Any) -> Any:
    path, body, headers = signed("01INBOX", payload)
    request = WebhookRequest("POST", path, "application/json", headers, body, "")
    return await WhatsAppCloudChannel().parse_webhook(request, _context())


REACTED_TO = "wamid.HBgLOTQ3NzEyMzQ1NjcVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"


@pytest.mark.parametrize(
    ("name", "content_type", "content", "media", "reply_to"),
    [
        ("text", "text", "ආයුබෝවන්! මගේ ඇණවුම කොහෙද?", None, None),
        (
            "image",
            "text",
            "The parcel arrived damaged",
            ("1003383421387256", "image/jpeg", None),
            None,
        ),
        ("audio", "text", None, ("1003383421387257", "audio/ogg; codecs=opus", None), None),
        ("video", "text", "How it looks", ("1003383421387258", "video/mp4", None), None),
        (
            "document",
            "text",
            "My invoice",
            ("1003383421387259", "application/pdf", "invoice-2041.pdf"),
            None,
        ),
        ("sticker", "text", None, ("1003383421387260", "image/webp", None), None),
        (
            "location",
            "location",
            "6.9016,79.8532\nMajestic City\nGalle Road, Colombo 03",
            None,
            None,
        ),
        (
            "contacts",
            "contacts",
            "Kamala Silva: +94 71 555 0101 (CELL), kamala@example.lk, Silva Traders",
            None,
            None,
        ),
        ("interactive_button", "interactive", "Track my order", None, REACTED_TO),
        (
            "interactive_list",
            "interactive",
            "Tomorrow 10:00",
            None,
            "wamid.HBgLOTQ3NzEyMzQ1NjcVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTgA",
        ),
        (
            "button",
            "interactive",
            "Stop promotions",
            None,
            "wamid.HBgLOTQ3NzEyMzQ1NjcVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTkA",
        ),
        ("reaction", "reaction", "👍", None, REACTED_TO),
        (
            "unsupported",
            "unsupported",
            "Unsupported WhatsApp message (type unsupported): Message type is currently not "
            "supported.",
            None,
            None,
        ),
    ],
)
async def test_every_message_type_is_read(
    name: str,
    content_type: str,
    content: str | None,
    media: tuple[str, str, str | None] | None,
    reply_to: str | None,
) -> None:
    result = await parse(message_webhook(name))
    (message,) = result.messages
    assert message.content_type == content_type
    assert message.content == content
    assert message.sender.address == CUSTOMER and message.sender.name == "Nimal Perera"
    assert message.reply_to == reply_to
    if media is None:
        assert message.media == ()
    else:
        (ref,) = message.media
        assert (ref.ref, ref.content_type, ref.filename) == media


async def test_a_type_the_hub_does_not_know_is_recorded_as_unsupported() -> None:
    result = await parse(message_webhook(type="order", order={"catalog_id": "1"}))
    (message,) = result.messages
    assert message.content_type == "unsupported"
    assert message.content == "Unsupported WhatsApp message (type order)"


async def test_a_delivery_with_many_entries_and_changes_is_taken_whole(
    client: Client, hub: Hub, inbox: str
) -> None:
    response = await post(client, inbox, fixture("batch"))
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert len(answer["messages"]) == 3
    assert [s["status"] for s in answer["statuses"]] == ["delivered"]
    rows = await hub.pool.fetch(
        """SELECT m.content, m.content_type, ci.address FROM messages m
             JOIN conversations c ON c.id = m.conversation_id
             JOIN contact_identities ci ON ci.contact_id = c.contact_id
            ORDER BY m.sent_at"""
    )
    assert [(r["address"], r["content_type"], r["content"]) for r in rows] == [
        (CUSTOMER, "text", "Hello?"),
        ("+94762345678", "text", "வணக்கம், என் ஆர்டர் எங்கே?"),
        (CUSTOMER, "reaction", "🙏"),
    ]
    assert await count(hub, "contacts") == 2
    assert await count(hub, "message_status_pending") == 1
    assert not await hub.pool.fetchval(
        "SELECT 1 FROM messages WHERE content = 'for another number'"
    )


async def test_changes_for_another_number_are_skipped_with_a_200(
    client: Client, hub: Hub, inbox: str
) -> None:
    payload = message_webhook()
    value_of(payload)["metadata"]["phone_number_id"] = OTHER_PHONE_NUMBER_ID
    response = await post(client, inbox, payload)
    assert response.status == 200
    assert (await response.json())["messages"] == []
    assert await count(hub, "messages") == 0


async def test_a_status_meta_adds_later_is_skipped_and_never_costs_the_messages(
    client: Client, hub: Hub, inbox: str
) -> None:
    payload = message_webhook(wamid="wamid.kept")
    value_of(payload)["statuses"] = value_of(status_webhook("wamid.other", "deleted"))["statuses"]
    response = await post(client, inbox, payload)
    assert response.status == 200, await response.text()
    stored = await hub.pool.fetchval(
        "SELECT count(*) FROM messages WHERE provider_message_id = 'wamid.kept'"
    )
    assert stored == 1


async def test_a_failed_status_carries_metas_code_and_details(
    client: Client, hub: Hub, inbox: str
) -> None:
    assert (await post(client, inbox, message_webhook())).status == 200
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    message_id = await reply(client, conversation_id, "Here is your tracking link")
    sent = await wait_for_status(hub, message_id, "sent")
    response = await post(client, inbox, status_webhook(sent["provider_message_id"], "failed"))
    assert response.status == 200
    failed = await wait_for_status(hub, message_id, "failed")
    assert failed["error_code"] == "131047"
    assert failed["error_message"].startswith("Message failed to send because more than 24 hours")
    events = await status_events(hub, message_id)
    assert [e["payload"]["status"] for e in events] == ["sent", "failed"]


# -- media ---------------------------------------------------------------------------------------


async def test_media_is_fetched_in_two_graph_steps_and_stored_byte_identical(
    client: Client, hub: Hub, mock: ProviderMock, inbox: str
) -> None:
    document = b"%PDF-1.7\n" + hashlib.sha512(b"invoice").digest() * 500
    media_id = graph_api(mock).add_media(document, "application/pdf")
    payload = message_webhook("document")
    value_of(payload)["messages"][0]["document"]["id"] = media_id
    response = await post(client, inbox, payload)
    assert response.status == 200, await response.text()
    (lookup,) = mock.of("graph.media")
    (download,) = mock.of("graph.download")
    assert lookup.path == f"/{VERSION}/{media_id}"
    assert lookup.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert download.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    row = await hub.pool.fetchrow("SELECT content, attachments FROM messages")
    assert row is not None and row["content"] == "My invoice"
    (attachment,) = row["attachments"]
    assert attachment["filename"] == "invoice-2041.pdf"
    assert attachment["content_type"] == "application/pdf"
    assert attachment["size"] == len(document)
    fetched = await client.get(attachment["url"], headers=AUTH)
    assert fetched.status == 200
    assert await fetched.read() == document
    # Meta delivers the same webhook again: no second fetch, no second file
    assert (await post(client, inbox, payload)).status == 200
    assert len(mock.of("graph.media")) == 1
    assert await count(hub, "media") == 1


async def test_a_media_lookup_failing_twice_then_answering_leaves_the_file(
    client: Client, hub: Hub, mock: ProviderMock, inbox: str
) -> None:
    media_id = graph_api(mock).add_media(b"\x89PNG" + b"x" * 500, "image/png")
    mock.fail_next("graph.media", 2, UNAVAILABLE)
    payload = message_webhook("image")
    value_of(payload)["messages"][0]["image"].update(id=media_id, mime_type="image/png")
    response = await post(client, inbox, payload)
    assert response.status == 200, await response.text()
    assert len(mock.of("graph.media")) == 3
    attachments = await hub.pool.fetchval("SELECT attachments FROM messages")
    assert attachments[0]["url"] and attachments[0]["content_type"] == "image/png"


async def test_media_outlasting_the_retries_is_a_503_and_nothing_is_stored(
    client: Client, hub: Hub, mock: ProviderMock, inbox: str
) -> None:
    media_id = graph_api(mock).add_media(b"ogg" * 100, "audio/ogg")
    mock.fail_always("graph.download", Failure(503, b"busy", content_type="text/plain"))
    payload = message_webhook("audio")
    value_of(payload)["messages"][0]["audio"]["id"] = media_id
    response = await post(client, inbox, payload)
    assert response.status == 503
    assert response.headers["Retry-After"]
    for table in ("messages", "contacts", "media"):
        assert await count(hub, table) == 0, table


@pytest.mark.parametrize("problem", ["unknown id", "wrong sha256", "foreign host"])
async def test_media_that_cannot_be_had_leaves_a_visible_gap_never_a_5xx(
    client: Client, hub: Hub, mock: ProviderMock, inbox: str, problem: str
) -> None:
    graph = graph_api(mock)
    media_id = graph.add_media(b"jpeg bytes", "image/jpeg")
    if problem == "unknown id":
        media_id = "999"
    elif problem == "wrong sha256":
        lookup = {
            "url": mock.url + graph.DOWNLOAD + f"?mid={media_id}",
            "sha256": "0" * 64,
            "mime_type": "image/jpeg",
            "id": media_id,
            "messaging_product": "whatsapp",
        }
        mock.fail_next("graph.media", 1, Failure(200, orjson.dumps(lookup)))
    else:
        lookup = {
            "url": "https://attacker.example/whatsapp_business/attachments/?mid=1",
            "mime_type": "image/jpeg",
            "id": media_id,
            "messaging_product": "whatsapp",
        }
        mock.fail_next("graph.media", 1, Failure(200, orjson.dumps(lookup)))
    payload = message_webhook("image")
    value_of(payload)["messages"][0]["image"]["id"] = media_id
    response = await post(client, inbox, payload)
    assert response.status == 200, await response.text()
    attachments = await hub.pool.fetchval("SELECT attachments FROM messages")
    assert attachments == [
        {
            "url": "",
            "content_type": "image/jpeg",
            "filename": None,
            "size": None,
            "unavailable": "not_received",
        }
    ]
    assert await count(hub, "media") == 0
    if problem == "foreign host":
        assert not mock.of("graph.download")


def test_the_token_goes_only_to_metas_hosts_or_the_configured_api() -> None:
    settings = {"api_base_url": "http://127.0.0.1:8765"}
    assert media_host_allowed("https://lookaside.fbsbx.com/whatsapp_business/attachments/", {})
    assert media_host_allowed("http://127.0.0.1:8765/whatsapp_business/attachments/", settings)
    assert not media_host_allowed("http://127.0.0.1:8766/x", settings)
    assert not media_host_allowed("http://lookaside.fbsbx.com/x", {})
    assert not media_host_allowed("https://fbsbx.com.attacker.example/x", {})
    assert not media_host_allowed("https://127.0.0.1:bad/x", settings)


# -- outbound ------------------------------------------------------------------------------------


@pytest.fixture
async def conversation(client: Client, hub: Hub, inbox: str) -> str:
    """A conversation whose customer wrote just now (the 24-hour window is open)."""
    assert (await post(client, inbox, message_webhook())).status == 200
    conversation_id: str = await hub.pool.fetchval("SELECT id FROM conversations")
    return conversation_id


async def test_a_text_reply_is_sent_as_the_graph_api_documents(
    client: Client, hub: Hub, mock: ProviderMock, conversation: str
) -> None:
    message_id = await reply(client, conversation, "ඔව්, අද එවනවා 📦")
    row = await wait_for_status(hub, message_id, "sent")
    (call,) = mock.of("graph.messages")
    assert call.path == f"/{VERSION}/{PHONE_NUMBER_ID}/messages"
    assert call.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert call.json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER_WA_ID,
        "type": "text",
        "text": {"preview_url": False, "body": "ඔව්, අද එවනවා 📦"},
    }
    assert row["provider_message_id"].startswith("wamid.")


async def test_a_file_is_uploaded_then_sent_by_its_media_id(
    client: Client, hub: Hub, mock: ProviderMock, conversation: str
) -> None:
    photo = hashlib.sha256(b"photo").digest() * 2000
    form = aiohttp.FormData()
    form.add_field("file", photo, filename="parcel.bin", content_type="application/octet-stream")
    form.add_field("content", "Your parcel, packed")
    response = await client.post(
        f"/api/v1/conversations/{conversation}/attachments", data=form, headers=AUTH
    )
    assert response.status == 201, await response.text()
    message_id = (await response.json())["id"]
    await wait_for_status(hub, message_id, "sent", "failed")
    row = await hub.pool.fetchrow(
        "SELECT status, error_code, error_message FROM messages WHERE id = $1", message_id
    )
    assert row is not None and row["status"] == "sent", dict(row or {})
    (upload,) = mock.of("graph.upload")
    assert upload.path == f"/{VERSION}/{PHONE_NUMBER_ID}/media"
    assert int(upload.headers["Content-Length"]) > len(photo)
    graph = graph_api(mock)
    (sent,) = graph.sent
    media_id = sent[sent["type"]]["id"]
    assert graph.media[media_id].data == photo
    assert sent["type"] == "document"  # application/octet-stream goes as a document
    assert sent["document"]["caption"] == "Your parcel, packed"
    assert sent["document"]["filename"] == "parcel.bin"


async def test_an_image_goes_as_an_image(
    client: Client, hub: Hub, mock: ProviderMock, conversation: str
) -> None:
    form = aiohttp.FormData()
    form.add_field(
        "file", b"\xff\xd8\xff" + b"j" * 100, filename="p.jpg", content_type="image/jpeg"
    )
    response = await client.post(
        f"/api/v1/conversations/{conversation}/attachments", data=form, headers=AUTH
    )
    assert response.status == 201, await response.text()
    await wait_for_status(hub, (await response.json())["id"], "sent")
    (sent,) = graph_api(mock).sent
    assert sent["type"] == "image" and set(sent["image"]) == {"id"}


async def test_a_template_is_sent_with_its_parameters_even_outside_the_window(
    client: Client, hub: Hub, mock: ProviderMock, inbox: str
) -> None:
    old = message_webhook(at=time.time() - DAY - 60)
    assert (await post(client, inbox, old)).status == 200
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    template = Template("order_update", "en_US", ("Nimal", "#2041"))
    message_id = await send_template(hub, conversation_id, template, enforce_reply_window=True)
    row = await wait_for_status(hub, message_id, "sent")
    stored = await hub.pool.fetchrow(
        "SELECT content, content_type, template FROM messages WHERE id = $1", message_id
    )
    assert stored is not None
    assert stored["content_type"] == "template"
    assert stored["content"] == "Template order_update (en_US): Nimal, #2041"
    assert stored["template"] == template.stored()
    (call,) = mock.of("graph.messages")
    assert call.json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER_WA_ID,
        "type": "template",
        "template": {
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Nimal"},
                        {"type": "text", "text": "#2041"},
                    ],
                }
            ],
        },
    }
    assert row["provider_message_id"].startswith("wamid.")


async def test_free_text_outside_the_window_fails_with_window_closed_and_is_never_sent(
    client: Client, hub: Hub, mock: ProviderMock, inbox: str
) -> None:
    assert (await post(client, inbox, message_webhook(at=time.time() - DAY - 60))).status == 200
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    refused = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"content": "Are you still there?"},
        headers=AUTH,
    )
    assert refused.status == 422, "REST refuses it up front"
    assert (await refused.json())["error"]["code"] == "window_closed"
    # one queued before the window closed (no up-front check) fails at send time
    message_id = await agent_message(hub, conversation_id, "Are you still there?")
    row = await wait_for_status(hub, message_id, "failed")
    assert row["error_code"] == "window_closed"
    assert "only a template" in row["error_message"]
    await asyncio.sleep(0.1)
    assert not mock.of("graph.messages")
    events = await status_events(hub, message_id)
    assert events[-1]["payload"]["error_code"] == "window_closed"


async def test_the_action_refuses_free_text_up_front_when_asked(
    client: Client, hub: Hub, inbox: str
) -> None:
    assert (await post(client, inbox, message_webhook(at=time.time() - DAY - 60))).status == 200
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    agent_id = await hub.pool.fetchval("SELECT id FROM api_tokens LIMIT 1")
    options: dict[str, Any] = {
        "account_id": hub.account_id,
        "agent_id": agent_id,
        "conversation_id": conversation_id,
        "private": False,
        "client_id": None,
    }
    with pytest.raises(MessageRefused) as refused:
        await in_transaction(
            hub.pool, create_agent_message, content="hi", enforce_reply_window=True, **options
        )
    assert refused.value.code == "window_closed"
    assert await count(hub, "messages") == 1
    # a private note is never delivered, so no window applies
    options["private"] = True
    await in_transaction(
        hub.pool, create_agent_message, content="note", enforce_reply_window=True, **options
    )
    # the customer writes again: the window is open
    assert (await post(client, inbox, message_webhook(wamid="wamid.again"))).status == 200
    options["private"] = False
    await in_transaction(
        hub.pool, create_agent_message, content="hi", enforce_reply_window=True, **options
    )


async def test_templates_are_refused_where_the_channel_has_none(
    client: Client, hub: Hub, mock: ProviderMock, conversation: str
) -> None:
    sms = await twilio_inbox(hub, mock)
    from tests.channels.twilio_support import fixture as twilio_fixture
    from tests.channels.twilio_support import signed_request

    path, body, headers = signed_request(sms, twilio_fixture("sms_inbound"))
    assert (await client.post(path, data=body, headers=headers)).status == 200
    sms_conversation = await hub.pool.fetchval(
        "SELECT id FROM conversations WHERE inbox_id = $1", sms
    )
    with pytest.raises(MessageRefused) as refused:
        await send_template(hub, sms_conversation, Template("order_update", "en"))
    assert refused.value.code == "templates_not_supported"
    for bad in (
        Template("Order Update", "en"),
        Template("order_update", "english"),
        Template("order_update", "en", ("two\nlines",)),
        Template("order_update", "en", ("",)),
    ):
        with pytest.raises(MessageRefused) as refused:
            await send_template(hub, conversation, bad)
        assert refused.value.code == "invalid_template"


async def test_a_throughput_error_backs_the_number_off_then_sends(
    client: Client,
    hub: Hub,
    mock: ProviderMock,
    conversation: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Backoff, "BASE", 0.2)
    mock.fail_next("graph.messages", 1, THROUGHPUT)
    started = time.monotonic()
    message_id = await reply(client, conversation, "One moment")
    await wait_for_status(hub, message_id, "sent")
    calls = mock.of("graph.messages")
    assert len(calls) == 2
    assert time.monotonic() - started >= 0.2  # the number waited out its backoff


@pytest.mark.parametrize(
    ("failure", "code"),
    [(PAIR_RATE, "131056"), (TOO_MANY_REQUESTS, "4"), (UNAVAILABLE, "131016")],
)
async def test_rate_limits_and_outages_are_retried(
    client: Client,
    hub: Hub,
    mock: ProviderMock,
    conversation: str,
    failure: Failure,
    code: str,
) -> None:
    mock.fail_next("graph.messages", 1, failure)
    message_id = await reply(client, conversation, "Retry me")
    await wait_for_status(hub, message_id, "sent")
    assert len(mock.of("graph.messages")) == 2


async def test_metas_own_window_refusal_is_final(
    client: Client, hub: Hub, mock: ProviderMock, conversation: str
) -> None:
    mock.fail_next("graph.messages", 1, WINDOW_CLOSED)
    message_id = await reply(client, conversation, "Hello again")
    row = await wait_for_status(hub, message_id, "failed")
    assert row["error_code"] == "131047"
    assert row["error_message"].startswith("Message failed to send because more than 24 hours")
    await asyncio.sleep(0.1)
    assert len(mock.of("graph.messages")) == 1


def test_backoff_doubles_per_throughput_error_and_resets_on_success() -> None:
    now = [100.0]
    backoff = Backoff(clock=lambda: now[0])
    assert [backoff.strike("n") for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.remaining("n") == 30
    now[0] += 12
    assert backoff.remaining("n") == 18
    assert backoff.remaining("other") == 0
    backoff.clear("n")
    assert backoff.remaining("n") == 0 and backoff.strike("n") == 1


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({}, "missing settings: phone_number_id"),
        ({"phone_number_id": "+15550783881"}, "phone_number_id"),
        ({"phone_number_id": "1", "api_base_url": "ftp://x"}, "api_base_url"),
        ({"phone_number_id": "1", "api_version": "23"}, "api_version"),
        ({"phone_number_id": "1", "business_account_id": 5}, "business_account_id"),
    ],
)
def test_settings_are_checked(settings: dict[str, Any], problem: str) -> None:
    with pytest.raises(SettingsInvalid, match=problem):
        WhatsAppCloudChannel().check_settings(settings)
    WhatsAppCloudChannel().check_settings({"phone_number_id": PHONE_NUMBER_ID})


def test_the_sender_limit_is_per_number_at_80_per_second_by_default() -> None:
    adapter = WhatsAppCloudChannel()
    context = _context()
    assert adapter.sender_limit(context) == (f"whatsapp_cloud:{PHONE_NUMBER_ID}", 80.0)
    assert adapter.sender_limit(_context(rate_per_second=20))[1] == 20.0


async def test_a_media_download_redirected_to_the_hub_itself_is_a_gap_never_followed(
    client: Client, hub: Hub, mock: ProviderMock, inbox: str
) -> None:
    """The file URL answering ``302`` to the hub's own /metrics: not followed, the message is
    stored with the attachment marked as not received, and the provider is not asked to retry."""
    graph = graph_api(mock)
    media_id = graph.add_media(b"jpeg bytes", "image/jpeg")
    lookup = {  # no sha256 given, so only the redirect check stands between
        "url": mock.url + graph.DOWNLOAD + f"?mid={media_id}",
        "mime_type": "image/jpeg",
        "id": media_id,
        "messaging_product": "whatsapp",
    }
    mock.fail_next("graph.media", 1, Failure(200, orjson.dumps(lookup)))
    location = str(client.make_url("/metrics"))
    mock.fail_next("graph.download", 1, Failure(302, headers={"Location": location}))
    payload = message_webhook("image")
    value_of(payload)["messages"][0]["image"].update(id=media_id, mime_type="image/jpeg")
    response = await post(client, inbox, payload)
    assert response.status == 200, await response.text()
    (attachment,) = await hub.pool.fetchval("SELECT attachments FROM messages")
    assert attachment["url"] == "" and attachment["size"] is None
    assert await count(hub, "media") == 0
    assert len(mock.of("graph.download")) == 1
