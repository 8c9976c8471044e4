"""The SendGrid channel through the real gateway and delivery consumer: Inbound Parse posts (parsed
fields and raw MIME), the signed Event Webhook, replies through the ``sendgrid`` SDK against a
local Mail Send mock, and the channel conformance suite."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Sequence
from email.message import EmailMessage
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from channels.sendgrid.manifest import MANIFEST
from hub.actions.setup import create_inbox
from hub.app import Hub
from hub.config import Config
from tests.channels.conformance import (
    AUTH,
    ChannelConformance,
    Client,
    Harness,
    Request,
    count,
    send,
    wait_for_status,
)
from tests.support.provider_mock import ApiEndpoint, ProviderMock, TwilioApi
from tests.support.sendgrid_mock import SEND, SendGridApi, sendgrid_error

pytestmark = pytest.mark.postgres
API_KEY = "SG.test-key"
TOKEN = "parse-token-of-the-test-0123456789"
KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC_KEY = base64.b64encode(
    KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()
SINHALA = "ඇණවුම.pdf"
TAMIL = "விலைப்பட்டியல்.txt"
BOUNDARY = "xYzZY"


@pytest.fixture
async def mock() -> AsyncIterator[ProviderMock]:
    api = SendGridApi()
    api.keys.add(API_KEY)
    provider = ProviderMock(api, TwilioApi(), ApiEndpoint())
    await provider.start()
    yield provider
    await provider.close()


def multipart(fields: list[tuple[str, bytes, dict[str, str]]]) -> tuple[bytes, str]:
    """A multipart/form-data body as SendGrid posts it: (name, value, extra part headers)."""
    out = b""
    for name, value, extra in fields:
        disposition = f'form-data; name="{name}"'
        if "filename" in extra:
            disposition += f'; filename="{extra["filename"]}"'
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n".encode()
        if "type" in extra:
            out += f"Content-Type: {extra['type']}\r\n".encode()
        out += b"\r\n" + value + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


def parse_fields(
    message_id: str,
    text: str = "hello",
    subject: str = "Order 123",
    html: str | None = None,
    files: Sequence[tuple[str, str, bytes]] = (),
    **extra: str,
) -> list[tuple[str, bytes, dict[str, str]]]:
    headers = (
        f"Received: by mx.sendgrid.net\r\nFrom: Ann <ann@example.com>\r\n"
        f"To: support@shop.example\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n"
        f'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="orig"\r\n'
    )
    fields: list[tuple[str, bytes, dict[str, str]]] = [
        ("headers", headers.encode(), {}),
        ("from", b"Ann <ann@example.com>", {}),
        ("to", b"support@shop.example", {}),
        ("subject", extra.get("form_subject", subject).encode(), {}),
        ("text", text.encode(), {}),
        ("envelope", b'{"to":["support@shop.example"],"from":"ann@example.com"}', {}),
        ("charsets", b'{"to":"UTF-8","subject":"UTF-8","from":"UTF-8","text":"UTF-8"}', {}),
        ("attachments", str(len(files)).encode(), {}),
    ]
    if html is not None:
        fields.append(("html", html.encode(), {}))
    info = {}
    for n, (name, kind, data) in enumerate(files, 1):
        info[f"attachment{n}"] = {"filename": name, "name": name, "type": kind}
        fields.append((f"attachment{n}", data, {"filename": name, "type": kind}))
    fields.append(("attachment-info", json.dumps(info, ensure_ascii=False).encode(), {}))
    return fields


def raw_mail(
    message_id: str, text: str = "hello", files: Sequence[tuple[str, str, bytes]] = ()
) -> bytes:
    m = EmailMessage()
    m["From"] = "Ann <ann@example.com>"
    m["To"] = "support@shop.example"
    m["Subject"] = "Order 123"
    m["Message-ID"] = message_id
    m.set_content(text)
    for name, kind, data in files:
        main, _, sub = kind.partition("/")
        m.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return m.as_bytes()


def sign(
    body: bytes, key: ec.EllipticCurvePrivateKey = KEY, ts: str | None = None
) -> dict[str, str]:
    ts = ts or str(int(time.time()))
    signature = key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": ts,
    }


class SendGridHarness(Harness):
    manifest = MANIFEST
    provider_statuses = (
        "processed",
        "deferred",
        "delivered",
        "open",
        "bounce",
        "dropped",
        "spamreport",
    )
    send_operation = SEND
    transient_failure = sendgrid_error(429, "too many requests")
    transient_code = "429"
    permanent_failure = sendgrid_error(400, "The to email is invalid", "personalizations.0.to")
    permanent_code = "400"
    delivered_status = "delivered"
    sent_status = "processed"
    unknown_status_refused = False  # SendGrid batches events; one it adds later is skipped

    async def create_inbox(self, hub: Hub, mock: ProviderMock) -> str:
        async with hub.pool.acquire() as conn:
            made = await create_inbox(
                conn, hub.box, account_id=hub.account_id, channel="sendgrid", name="Shop",
                secrets_in={"api_key": API_KEY, "parse_token": TOKEN,
                            "event_public_key": PUBLIC_KEY},
                settings={"address": "support@shop.example", "api_base_url": mock.url,
                          "rate_per_second": 1000},
            )  # fmt: skip
        return made.id

    @property
    def parse_path(self) -> str:
        return f"/webhooks/sendgrid/{self.inbox_id}/parse/{TOKEN}"

    def post(self, fields: list[tuple[str, bytes, dict[str, str]]], path: str = "") -> Request:
        body, content_type = multipart(fields)
        return Request(path or self.parse_path, body, {"Content-Type": content_type})

    def events(self, events: list[dict[str, Any]], **options: Any) -> Request:
        body = json.dumps(events).encode()
        return Request(f"/webhooks/sendgrid/{self.inbox_id}/events", body, sign(body, **options))

    def inbound(self, provider_message_id: str, text: str = "hello") -> Request:
        return self.post(parse_fields(f"<{provider_message_id}>", text))

    def forged(self, provider_message_id: str) -> list[tuple[str, Request]]:
        fields = parse_fields(f"<{provider_message_id}@example.com>")
        base = f"/webhooks/sendgrid/{self.inbox_id}"
        event = [{"event": "delivered", "hub_message_id": provider_message_id}]
        good = self.events(event)
        return [
            ("no token", self.post(fields, base)),
            ("wrong token", self.post(fields, f"{base}/parse/{TOKEN[:-1]}x")),
            ("token prefix", self.post(fields, f"{base}/parse/{TOKEN[:-1]}")),
            (
                "events unsigned",
                Request(good.path, good.body, {"Content-Type": "application/json"}),
            ),
            ("events other key", self.events(event, key=OTHER_KEY)),
            ("events other content", Request(good.path, good.body + b" ", good.headers)),
            (
                "events junk signature",
                Request(
                    good.path,
                    good.body,
                    good.headers | {"X-Twilio-Email-Event-Webhook-Signature": "not base64!"},
                ),
            ),
        ]

    def malformed(self) -> list[tuple[str, Request]]:
        ok = parse_fields("<m@example.com>")
        body, content_type = multipart(ok)
        files = parse_fields(
            "<f@example.com>", files=[("a\r\nX-Evil: 1.pdf", "application/pdf", b"%PDF")]
        )
        return [
            (
                "not multipart",
                Request(
                    self.parse_path, b"a=b", {"Content-Type": "application/x-www-form-urlencoded"}
                ),
            ),
            (
                "cut multipart",
                Request(self.parse_path, body[: len(body) // 2], {"Content-Type": content_type}),
            ),
            (
                "no boundary",
                Request(self.parse_path, body, {"Content-Type": "multipart/form-data"}),
            ),
            ("no headers", self.post([f for f in ok if f[0] != "headers"])),
            (
                "subject injection",
                self.post(
                    parse_fields("<s@example.com>", form_subject="Hi\r\nBcc: x@evil.example")
                ),
            ),
            ("file name injection", self.post(files)),
            ("missing attachment", self.post([f for f in files if f[0] != "attachment1"])),
            (
                "bad attachment-info",
                self.post(
                    [f for f in ok if f[0] != "attachment-info"]
                    + [("attachment-info", b"{nope", {})]
                ),
            ),
            ("empty raw", self.post([("email", b"", {})])),
            ("raw without sender", self.post([("email", b"Subject: hi\r\n\r\nno From", {})])),
            ("events not json", self.events_raw(b"{not json")),
            ("events not a list", self.events_raw(b'{"event": "open"}')),
        ]

    def events_raw(self, body: bytes) -> Request:
        return Request(f"/webhooks/sendgrid/{self.inbox_id}/events", body, sign(body))

    def status(self, provider_message_id: str, provider_status: str) -> Request:
        return self.events(
            [{"email": "ann@example.com", "timestamp": 1700000000, "event": provider_status,
              "sg_message_id": "sg1.filter0001", "hub_message_id": provider_message_id,
              "sg_event_id": f"ev-{provider_message_id}-{provider_status}"}]
        )  # fmt: skip


class TestSendGridConformance(ChannelConformance):
    @pytest.fixture
    def harness(self) -> Harness:
        return SendGridHarness()


@pytest.fixture
async def ready(hub: Hub, mock: ProviderMock) -> SendGridHarness:
    harness = SendGridHarness()
    harness.inbox_id = await harness.create_inbox(hub, mock)
    return harness


async def _files(hub: Hub, provider_id: str) -> dict[str, str]:
    rows = await hub.pool.fetch(
        """SELECT f.filename, f.content_type FROM media f JOIN messages m ON m.id = f.message_id
            WHERE m.provider_message_id = $1""",
        provider_id,
    )
    return {r["filename"]: r["content_type"] for r in rows}


async def test_a_parsed_post_with_sinhala_and_tamil_attachments_is_stored(
    client: Client, hub: Hub, ready: SendGridHarness
) -> None:
    files = [
        (SINHALA, "application/pdf", b"%PDF-1.4 order"),
        (TAMIL, "text/plain", "விலை".encode()),
    ]
    html = '<p>Where is <b>my order</b>?</p><script>alert(1)</script><img src="https://t.example/x.gif">'
    response = await send(
        client,
        ready.post(parse_fields("<p1@example.com>", "Where is my order?", html=html, files=files)),
    )
    assert response.status == 200, await response.text()
    row = await hub.pool.fetchrow(
        "SELECT content FROM messages WHERE provider_message_id = 'p1@example.com'"
    )
    assert row is not None and row["content"] == "Where is my order?"
    stored = await _files(hub, "p1@example.com")
    assert stored[SINHALA] == "application/pdf" and stored[TAMIL] == "text/plain"
    assert "original.eml" in stored and "message.html" in stored
    key = await hub.pool.fetchval("SELECT key FROM media WHERE filename = 'message.html'")
    page = await client.get(f"/api/v1/media/{key}", headers=AUTH)
    shown = await page.text()
    assert "my order" in shown and "<script" not in shown and "t.example" not in shown


async def test_a_raw_mime_post_with_sinhala_and_tamil_attachments_is_stored(
    client: Client, hub: Hub, ready: SendGridHarness
) -> None:
    files = [(SINHALA, "application/pdf", b"%PDF-1.4"), (TAMIL, "text/plain", b"x")]
    raw = raw_mail("<raw1@example.com>", "Raw hello", files)
    response = await send(
        client, ready.post([("email", raw, {}), ("to", b"support@shop.example", {})])
    )
    assert response.status == 200, await response.text()
    assert (
        await hub.pool.fetchval(
            "SELECT content FROM messages WHERE provider_message_id = 'raw1@example.com'"
        )
        == "Raw hello"
    )
    stored = await _files(hub, "raw1@example.com")
    assert SINHALA in stored and TAMIL in stored


async def test_basic_auth_when_the_inbox_has_it(
    client: Client, hub: Hub, mock: ProviderMock
) -> None:
    async with hub.pool.acquire() as conn:
        made = await create_inbox(
            conn, hub.box, account_id=hub.account_id, channel="sendgrid", name="Locked",
            secrets_in={"api_key": API_KEY, "parse_token": TOKEN, "parse_username": "sg",
                        "parse_password": "pw"},
            settings={"address": "locked@shop.example"},
        )  # fmt: skip
    harness = SendGridHarness()
    harness.inbox_id = made.id
    request = harness.inbound("ba1@example.com")
    for header in (None, "Basic " + base64.b64encode(b"sg:wrong").decode(), "Basic ???"):
        headers = request.headers | ({"Authorization": header} if header else {})
        refused = await send(client, Request(request.path, request.body, headers))
        assert refused.status == 403, await refused.text()
    assert await count(hub, "messages") == 0
    good = request.headers | {"Authorization": "Basic " + base64.b64encode(b"sg:pw").decode()}
    accepted = await send(client, Request(request.path, request.body, good))
    assert accepted.status == 200, await accepted.text()
    assert await count(hub, "messages") == 1


async def test_a_reply_is_threaded_and_its_events_move_it_to_read(
    client: Client, hub: Hub, mock: ProviderMock, ready: SendGridHarness
) -> None:
    inbound = await send(client, ready.inbound("first@example.com"))
    assert inbound.status == 200, await inbound.text()
    conversation_id = await hub.pool.fetchval("SELECT conversation_id FROM messages")
    reply = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"content": "It ships today"},
        headers=AUTH,
    )
    message_id = (await reply.json())["id"]
    row = await wait_for_status(hub, message_id, "sent")
    (request,) = mock.of(SEND)
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    body = request.json()
    headers = body["headers"]
    assert headers["Message-ID"] == f"<{row['provider_message_id']}>"
    assert headers["In-Reply-To"] == "<first@example.com>"
    assert "<first@example.com>" in headers["References"]
    assert body["subject"] == "Re: Order 123"
    assert body["custom_args"] == {"hub_message_id": row["provider_message_id"]}
    assert body["personalizations"][0]["to"] == [{"email": "ann@example.com"}]
    # an event for a mail the hub did not send is skipped, never refused
    other = await send(client, ready.events([{"event": "delivered", "sg_message_id": "x.y"}]))
    assert other.status == 200, await other.text()
    opened = await send(client, ready.status(row["provider_message_id"], "open"))
    assert opened.status == 200, await opened.text()
    await wait_for_status(hub, message_id, "read")
    # the customer answers: the same conversation
    answer = parse_fields("<second@example.com>", "Thanks", subject="Re: Order 123")
    answer[0] = ("headers", answer[0][1] + f"In-Reply-To: {headers['Message-ID']}\r\n".encode(), {})
    assert (await send(client, ready.post(answer))).status == 200
    assert (
        await hub.pool.fetchval(
            "SELECT conversation_id FROM messages WHERE provider_message_id = 'second@example.com'"
        )
        == conversation_id
    )


async def test_a_reply_with_cc_and_bcc_goes_to_sendgrid_with_them(
    client: Client, hub: Hub, mock: ProviderMock, ready: SendGridHarness
) -> None:
    assert (await send(client, ready.inbound("cc@example.com"))).status == 200
    conversation_id = await hub.pool.fetchval("SELECT conversation_id FROM messages")
    email = {"cc": ["sister@example.com"], "bcc": ["books@shop.example"], "subject": "Invoice"}
    reply = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"content": "Both of you", "email": email},
        headers=AUTH,
    )
    await wait_for_status(hub, (await reply.json())["id"], "sent")
    (request,) = mock.of(SEND)
    body = request.json()
    assert body["subject"] == "Invoice"
    (to,) = body["personalizations"]
    assert to["cc"] == [{"email": "sister@example.com"}]
    assert to["bcc"] == [{"email": "books@shop.example"}]
    assert "Bcc" not in body.get("headers", {})


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    return hub_config.replace(max_body_bytes=256 * 1024)


async def test_an_oversize_post_is_413_and_nothing_is_stored(
    client: Client, hub: Hub, ready: SendGridHarness
) -> None:
    big = parse_fields(
        "<big@example.com>", files=[("big.bin", "application/octet-stream", b"x" * 300_000)]
    )
    response = await send(client, ready.post(big))
    assert response.status == 413, await response.text()
    assert await count(hub, "messages") == 0
