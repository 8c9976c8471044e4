"""Twilio against the channel conformance suite, plus what is Twilio's own: Messaging Service
numbers, WhatsApp and SMS as one contact, media, the signature edge cases, status callbacks that
overtake the send, and the SDK call itself."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient

from channels._base import InboxContext, WebhookRejected, WebhookRequest
from channels.twilio import TwilioChannel
from channels.twilio.manifest import MANIFEST
from hub.app import Hub
from tests.channels.conformance import (
    AUTH,
    ChannelConformance,
    Harness,
    Request,
    count,
    status_events,
    wait_for_status,
)
from tests.channels.conftest import PUBLIC_URL
from tests.channels.twilio_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CUSTOMER,
    FORM,
    FROM_NUMBER,
    fixture,
    signature,
    signed_request,
    twilio_api,
    twilio_inbox,
    webhook_path,
    with_sid,
)
from tests.support.provider_mock import (
    INVALID_TO,
    SERVER_ERROR,
    TOO_MANY_REQUESTS,
    Failure,
    ProviderMock,
    twilio_error,
)

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]

TWILIO_STATUSES = (
    "queued",
    "sending",
    "sent",
    "failed",
    "delivered",
    "undelivered",
    "receiving",
    "received",
    "accepted",
    "scheduled",
    "read",
    "partially_delivered",
    "canceled",
)


class TwilioHarness(Harness):
    manifest = MANIFEST
    provider_statuses = TWILIO_STATUSES
    send_operation = "twilio.messages"
    transient_failure = SERVER_ERROR
    transient_code = "20500"
    permanent_failure = INVALID_TO
    permanent_code = "21211"
    delivered_status = "delivered"
    sent_status = "sent"

    async def create_inbox(self, hub: Hub, mock: ProviderMock) -> str:
        return await twilio_inbox(hub, mock)

    def _request(self, pairs: list[tuple[str, str]], **kwargs: Any) -> Request:
        path, body, headers = signed_request(self.inbox_id, pairs, **kwargs)
        return Request(path, body, headers)

    def inbound(self, provider_message_id: str, text: str = "hello") -> Request:
        return self._request(with_sid("sms_inbound", provider_message_id, Body=text))

    def forged(self, provider_message_id: str) -> list[tuple[str, Request]]:
        pairs = with_sid("sms_inbound", provider_message_id)
        good = self._request(pairs)
        path = webhook_path(self.inbox_id)
        tampered = urlencode(
            with_sid("sms_inbound", provider_message_id, Body="send me a refund")
        ).encode()
        blank_dropped = [(k, v) for k, v in pairs if v]
        return [
            ("missing signature", Request(path, good.body, FORM)),
            ("empty signature", Request(path, good.body, {**FORM, "X-Twilio-Signature": ""})),
            ("wrong token", self._request(pairs, token="not-the-auth-token")),
            (
                "signed for another URL",
                self._request(pairs, url=PUBLIC_URL + webhook_path("01OTHERINBOX")),
            ),
            ("signed over http", self._request(pairs, url=PUBLIC_URL.replace("https", "http"))),
            ("body changed after signing", Request(path, tampered, good.headers)),
            (
                "signed without the blank parameters",
                Request(
                    path,
                    good.body,
                    {
                        **FORM,
                        "X-Twilio-Signature": signature(PUBLIC_URL + path, blank_dropped),
                    },
                ),
            ),
            (
                "SharedKey header without a configured key",
                Request(
                    path,
                    good.body,
                    {
                        **good.headers,
                        "X-Twilio-Webhooks-Signature-Settings": "key=k1,algorithm=HMAC_SHA256",
                    },
                ),
            ),
        ]

    def malformed(self) -> list[tuple[str, Request]]:
        path = webhook_path(self.inbox_id)
        json_body = b'{"MessageSid": "SM1", "From": "+94771234567"}'
        return [
            (
                "JSON instead of a form",
                Request(path, json_body, {"Content-Type": "application/json"}),
            ),
            ("not UTF-8", Request(path, b"Body=%ff%fe&From=%2B1", FORM)),
            ("too many fields", Request(path, b"&".join(b"f%d=1" % n for n in range(500)), FORM)),
            ("missing From", self._request(with_sid("sms_inbound", "SMm1", From=None))),
            (
                "missing MessageSid",
                self._request(
                    fixture("sms_inbound", MessageSid=None, SmsSid=None, SmsMessageSid=None)
                ),
            ),
            ("From is not a number", self._request(with_sid("sms_inbound", "SMm2", From="ACME"))),
            ("NumMedia not a number", self._request(with_sid("sms_inbound", "SMm3", NumMedia="x"))),
            (
                "NumMedia without MediaUrl",
                self._request(with_sid("sms_inbound", "SMm4", NumMedia="1")),
            ),
            (
                "MediaUrl not http",
                self._request(
                    with_sid("sms_inbound", "SMm5", NumMedia="1", MediaUrl0="file:///etc/passwd")
                ),
            ),
            (
                "From given twice",
                self._request([*with_sid("sms_inbound", "SMm6"), ("From", "+94770000000")]),
            ),
            (
                "unknown status",
                self._request(with_sid("status_sent", "SMm7", MessageStatus="lost")),
            ),
            ("GET", Request(path, b"", {}, method="GET")),
            ("NUL in the body", self._request(with_sid("sms_inbound", "SMm8", Body="a\x00b"))),
        ]

    def status(self, provider_message_id: str, provider_status: str) -> Request:
        name = (
            "status_undelivered" if provider_status in ("failed", "undelivered") else "status_sent"
        )
        pairs = with_sid(
            name, provider_message_id, MessageStatus=provider_status, SmsStatus=provider_status
        )
        return self._request(pairs)


class TestTwilioConformance(ChannelConformance):
    @pytest.fixture
    def harness(self) -> Harness:
        return TwilioHarness()


@pytest.fixture
async def sms_inbox(hub: Hub, mock: ProviderMock) -> str:
    return await twilio_inbox(hub, mock)


async def post(client: Client, inbox_id: str, pairs: list[tuple[str, str]]) -> Any:
    path, body, headers = signed_request(inbox_id, pairs)
    return await client.post(path, data=body, headers=headers)


async def test_inbound_sms_is_stored_and_answered_with_empty_twiml(
    client: Client, hub: Hub, sms_inbox: str
) -> None:
    response = await post(client, sms_inbox, fixture("sms_inbound"))
    assert response.status == 200, await response.text()
    assert response.content_type == "text/xml"
    assert "<Response/>" in await response.text()
    row = await hub.pool.fetchrow(
        """SELECT m.content, m.provider_message_id, m.direction, ci.channel, ci.address
             FROM messages m JOIN conversations c ON c.id = m.conversation_id
             JOIN contact_identities ci ON ci.contact_id = c.contact_id"""
    )
    assert row is not None
    assert row["content"] == "Hello, is my order on its way?"
    assert row["provider_message_id"] == "SM1f0e8ae6ade43cb3c0ce4525424e404f"
    assert (row["channel"], row["address"]) == ("phone", CUSTOMER)


async def test_a_number_inside_a_messaging_service_verifies(
    client: Client, hub: Hub, mock: ProviderMock
) -> None:
    inbox = await twilio_inbox(
        hub, mock, from_number=None, messaging_service_sid="MG2c4e6a8b0d1f3a5c7e9b1d3f5a7c9e1b"
    )
    response = await post(client, inbox, fixture("messaging_service_inbound"))
    assert response.status == 200, await response.text()
    assert await count(hub, "messages") == 1


async def test_the_signature_holds_behind_a_proxy_and_with_a_query(
    client: Client, hub: Hub, sms_inbox: str
) -> None:
    """The URL is the public one plus the path and query as sent; the Host header is ignored."""
    pairs = fixture("sms_inbound")
    path = webhook_path(sms_inbox) + "?source=console&n=1"
    headers = {**FORM, "X-Twilio-Signature": signature(PUBLIC_URL + path, pairs)}
    response = await client.post(
        path,
        data=urlencode(pairs).encode(),
        headers={**headers, "Host": "internal-lb:8080", "X-Forwarded-Proto": "http"},
    )
    assert response.status == 200, await response.text()


async def test_sms_and_whatsapp_from_one_number_are_one_contact(
    client: Client, hub: Hub, mock: ProviderMock, sms_inbox: str
) -> None:
    whatsapp = await twilio_inbox(hub, mock, kind="whatsapp", name="WhatsApp")
    response = await post(client, whatsapp, fixture("whatsapp_inbound"))
    assert response.status == 200, await response.text()
    assert (await post(client, sms_inbox, fixture("sms_inbound"))).status == 200
    assert await count(hub, "contacts") == 1
    assert await count(hub, "conversations") == 2
    row = await hub.pool.fetchrow(
        """SELECT ct.name, m.content FROM messages m
             JOIN conversations c ON c.id = m.conversation_id
             JOIN contacts ct ON ct.id = c.contact_id
            WHERE m.inbox_id = $1""",
        whatsapp,
    )
    assert row is not None
    assert row["content"] == "ආයුබෝවන්"
    assert row["name"] == "Nimal Perera"  # WhatsApp's ProfileName


def _context(settings: dict[str, Any]) -> InboxContext:
    return InboxContext(
        "01INBOX", "01ACCOUNT", "twilio", "t", "reopen", settings, {"auth_token": AUTH_TOKEN}
    )


async def test_a_national_number_is_read_in_the_inbox_region() -> None:
    pairs = fixture("sms_inbound", From="0771234567")
    url = PUBLIC_URL + "/webhooks/twilio/01INBOX"
    request = WebhookRequest(
        "POST",
        "/webhooks/twilio/01INBOX",
        "application/x-www-form-urlencoded",
        {"X-Twilio-Signature": signature(url, pairs)},
        urlencode(pairs).encode(),
        url,
    )
    result = await TwilioChannel().parse_webhook(request, _context({"default_region": "LK"}))
    assert result.messages[0].sender.address == CUSTOMER
    with pytest.raises(WebhookRejected) as refused:  # no region: not a number
        await TwilioChannel().parse_webhook(request, _context({}))
    assert refused.value.status == 422


async def test_no_auth_token_refuses_everything(client: Client, hub: Hub, sms_inbox: str) -> None:
    await hub.pool.execute(
        "UPDATE inboxes SET secrets = $2 WHERE id = $1",
        sms_inbox,
        hub.box.seal({"account_sid": ACCOUNT_SID, "auth_token": ""}),
    )
    path, body, _ = signed_request(sms_inbox, fixture("sms_inbound"))
    headers = {
        **FORM,
        "X-Twilio-Signature": signature(PUBLIC_URL + path, fixture("sms_inbound"), ""),
    }
    response = await client.post(path, data=body, headers=headers)
    assert response.status == 403
    assert await count(hub, "messages") == 0


async def test_mms_media_is_fetched_with_the_account_credentials_and_stored(
    client: Client, hub: Hub, mock: ProviderMock, sms_inbox: str
) -> None:
    image = bytes(range(256)) * 40
    url = twilio_api(mock).add_media(mock, ACCOUNT_SID, image, "image/jpeg")
    response = await post(client, sms_inbox, fixture("mms_inbound", MediaUrl0=url))
    assert response.status == 200, await response.text()
    fetched = mock.of("twilio.media")
    assert len(fetched) == 1 and fetched[0].headers["Authorization"].startswith("Basic ")
    attachments = await hub.pool.fetchval("SELECT attachments FROM messages")
    assert len(attachments) == 1 and attachments[0]["content_type"] == "image/jpeg"
    assert attachments[0]["size"] == len(image)
    download = await client.get(attachments[0]["url"], headers=AUTH)
    assert download.status == 200
    assert hashlib.sha256(await download.read()).digest() == hashlib.sha256(image).digest()
    # the same webhook again: no second fetch, no second file
    again = await post(client, sms_inbox, fixture("mms_inbound", MediaUrl0=url))
    assert again.status == 200
    assert len(mock.of("twilio.media")) == 1
    assert await count(hub, "media") == 1


async def test_media_failing_for_good_leaves_a_visible_gap_and_never_a_5xx(
    client: Client, hub: Hub, mock: ProviderMock, sms_inbox: str
) -> None:
    gone = mock.url + f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/ME404"
    response = await post(client, sms_inbox, fixture("mms_inbound", MediaUrl0=gone))
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


async def test_media_outlasting_the_retries_is_a_503_and_nothing_is_stored(
    client: Client, hub: Hub, mock: ProviderMock, sms_inbox: str
) -> None:
    url = twilio_api(mock).add_media(mock, ACCOUNT_SID, b"x" * 100, "image/png")
    mock.fail_always("twilio.media", twilio_error(503, 20503, "Service unavailable"))
    response = await post(client, sms_inbox, fixture("mms_inbound", MediaUrl0=url))
    assert response.status == 503
    assert response.headers["Retry-After"]
    assert (await response.json())["error"]["code"] == "media_unavailable"
    for table in ("messages", "contacts", "media"):
        assert await count(hub, table) == 0, table
    files = (
        list((hub.config.data_dir / "media").rglob("*"))
        if (hub.config.data_dir / "media").exists()
        else []
    )
    assert not [f for f in files if f.is_file()]


async def test_credentials_never_go_to_a_host_that_is_not_twilio(
    client: Client, hub: Hub, mock: ProviderMock, sms_inbox: str
) -> None:
    elsewhere = "https://attacker.example/2010-04-01/Media/ME1"
    response = await post(client, sms_inbox, fixture("mms_inbound", MediaUrl0=elsewhere))
    assert response.status == 200
    assert not mock.of("twilio.media")
    attachments = await hub.pool.fetchval("SELECT attachments FROM messages")
    assert attachments[0]["url"] == ""


async def test_the_sdk_call_carries_what_twilio_needs(
    client: Client, hub: Hub, mock: ProviderMock, mock_inbox_reply: tuple[str, str]
) -> None:
    inbox, message_id = mock_inbox_reply
    row = await wait_for_status(hub, message_id, "sent")
    calls = mock.of("twilio.messages")
    assert len(calls) == 1
    form = calls[0].form
    assert form["To"] == CUSTOMER and form["From"] == FROM_NUMBER
    assert form["Body"] == "On its way"
    assert form["StatusCallback"] == f"{PUBLIC_URL}/webhooks/twilio/{inbox}"
    assert calls[0].headers["User-Agent"].startswith("twilio-python/")
    assert calls[0].path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert row["provider_message_id"].startswith("SM")


@pytest.fixture
async def mock_inbox_reply(client: Client, hub: Hub, sms_inbox: str) -> tuple[str, str]:
    assert (await post(client, sms_inbox, fixture("sms_inbound"))).status == 200
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    reply = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"content": "On its way"},
        headers=AUTH,
    )
    assert reply.status == 201
    return sms_inbox, (await reply.json())["id"]


async def test_whatsapp_replies_go_to_whatsapp_addresses(
    client: Client, hub: Hub, mock: ProviderMock
) -> None:
    inbox = await twilio_inbox(hub, mock, kind="whatsapp", name="WhatsApp")
    assert (await post(client, inbox, fixture("whatsapp_inbound"))).status == 200
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    reply = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"content": "ඔව්"}, headers=AUTH
    )
    message_id = (await reply.json())["id"]
    await wait_for_status(hub, message_id, "sent")
    form = mock.of("twilio.messages")[0].form
    assert form["To"] == f"whatsapp:{CUSTOMER}" and form["From"] == f"whatsapp:{FROM_NUMBER}"
    pmid = await hub.pool.fetchval(
        "SELECT provider_message_id FROM messages WHERE id = $1", message_id
    )
    path, body, headers = signed_request(inbox, with_sid("status_read", pmid))
    assert (await client.post(path, data=body, headers=headers)).status == 200
    await wait_for_status(hub, message_id, "read")


async def test_a_status_callback_that_overtakes_the_send_is_applied_when_the_send_is_recorded(
    client: Client, hub: Hub, mock: ProviderMock, sms_inbox: str
) -> None:
    from hub.actions.message_status import record_sent

    assert (await post(client, sms_inbox, fixture("sms_inbound"))).status == 200
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    # a reply the delivery consumer has not sent yet: inserted as queued by hand
    message_id = "01MESSAGEWAITINGFORSEND00"
    await hub.pool.execute(
        """INSERT INTO messages (id, account_id, conversation_id, inbox_id, direction,
                                 sender_type, content, status, delivery_started_at)
           VALUES ($1, $2, $3, $4, 'outbound', 'agent', 'hi', 'queued', now())""",
        message_id,
        hub.account_id,
        conversation_id,
        sms_inbox,
    )
    path, body, headers = signed_request(sms_inbox, with_sid("status_delivered", "SMearly"))
    response = await client.post(path, data=body, headers=headers)
    assert response.status == 200
    assert await count(hub, "message_status_pending") == 1
    async with hub.pool.acquire() as conn, conn.transaction():
        await record_sent(
            conn, message_id=message_id, provider_message_id="SMearly", channel="twilio"
        )
    row = await wait_for_status(hub, message_id, "delivered")
    assert row["provider_message_id"] == "SMearly"
    assert await count(hub, "message_status_pending") == 0
    events = await status_events(hub, message_id)
    assert [e["payload"]["status"] for e in events] == ["sent", "delivered"]


async def test_undelivered_carries_twilio_error_code_and_a_readable_message(
    client: Client, hub: Hub, mock: ProviderMock, mock_inbox_reply: tuple[str, str]
) -> None:
    inbox, message_id = mock_inbox_reply
    row = await wait_for_status(hub, message_id, "sent")
    path, body, headers = signed_request(
        inbox, with_sid("status_undelivered", row["provider_message_id"])
    )
    assert (await client.post(path, data=body, headers=headers)).status == 200
    failed = await wait_for_status(hub, message_id, "failed")
    assert failed["error_code"] == "30003"
    assert failed["error_message"] == "Unreachable destination handset"
    events = await status_events(hub, message_id)
    assert events[-1]["payload"]["error_code"] == "30003"


async def test_429_on_send_is_retried_then_sent(
    client: Client, hub: Hub, mock: ProviderMock, sms_inbox: str
) -> None:
    mock.fail_next("twilio.messages", 2, TOO_MANY_REQUESTS)
    assert (await post(client, sms_inbox, fixture("sms_inbound"))).status == 200
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    reply = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"content": "x"}, headers=AUTH
    )
    await wait_for_status(hub, (await reply.json())["id"], "sent")
    assert len(mock.of("twilio.messages")) == 3


async def test_a_reply_is_sent_once_even_if_its_event_comes_twice(
    client: Client, hub: Hub, mock: ProviderMock, mock_inbox_reply: tuple[str, str]
) -> None:
    from channels.delivery import Delivery
    from hub.events import decode_event

    _, message_id = mock_inbox_reply
    await wait_for_status(hub, message_id, "sent")
    raw = None
    async with asyncio.timeout(10):  # the journal is a consumer of its own
        while raw is None:
            raw = await hub.pool.fetchval(
                "SELECT event::text FROM event_log WHERE type = 'message.created'"
                " AND event->'payload'->>'message_id' = $1",
                message_id,
            )
            await asyncio.sleep(0.02)
    event = decode_event(raw.encode())
    again = Delivery(hub.pool, hub.box, hub.config)
    await again.start()
    try:
        await again.deliver(event)  # the same event (already claimed)
        await hub.pool.execute("DELETE FROM processed_events WHERE consumer = 'delivery'")
        await again.deliver(event)  # claim lost, but the message is no longer queued
    finally:
        await again.stop()
    await asyncio.sleep(0.1)
    assert len(mock.of("twilio.messages")) == 1


# -- media redirects -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "where",
    ["the hub's metrics", "file:///etc/passwd", "gopher://127.0.0.1/x", "cloud metadata"],
)
async def test_a_media_redirect_off_the_provider_is_a_recorded_gap_never_followed(
    client: Client, hub: Hub, mock: ProviderMock, sms_inbox: str, where: str
) -> None:
    """Twilio's media URL answering ``302`` to the hub's own /metrics (or a file, another
    scheme, a link-local address): not followed, the message stored with the attachment marked
    as not received, and the provider not asked to retry (200)."""
    location = {
        "the hub's metrics": str(client.make_url("/metrics")),
        "cloud metadata": "http://169.254.169.254/latest/meta-data/",
    }.get(where, where)
    url = twilio_api(mock).add_media(mock, ACCOUNT_SID, b"never served", "image/jpeg")
    mock.fail_next("twilio.media", 1, Failure(302, headers={"Location": location}))
    response = await post(client, sms_inbox, fixture("mms_inbound", MediaUrl0=url))
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
    assert len(mock.of("twilio.media")) == 1, "a refused redirect is not retried"


async def test_a_media_redirect_within_the_provider_is_followed(
    client: Client, hub: Hub, mock: ProviderMock, sms_inbox: str
) -> None:
    """Twilio redirects media to its storage: followed when the hop is allowed."""
    image = b"\xff\xd8" + bytes(range(256)) * 8
    api = twilio_api(mock)
    stored_at = api.add_media(mock, ACCOUNT_SID, image, "image/jpeg")
    first = api.add_media(mock, ACCOUNT_SID, b"not this", "image/jpeg")
    mock.fail_next("twilio.media", 1, Failure(307, headers={"Location": stored_at}))
    response = await post(client, sms_inbox, fixture("mms_inbound", MediaUrl0=first))
    assert response.status == 200, await response.text()
    (attachment,) = await hub.pool.fetchval("SELECT attachments FROM messages")
    assert attachment["size"] == len(image)
    download = await client.get(attachment["url"], headers=AUTH)
    assert await download.read() == image
    assert [r.path for r in mock.of("twilio.media")] == [
        first.removeprefix(mock.url),
        stored_at.removeprefix(mock.url),
    ]
