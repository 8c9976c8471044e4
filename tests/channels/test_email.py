"""The email channel end to end: a real IMAP server (dovecot) the hub reads, a real SMTP server
(aiosmtpd) that receives the replies, and the channel conformance suite over the signed
raw-mail webhook."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import hmac
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aioimaplib  # type: ignore[import-untyped]
import pytest
from aiosmtpd.controller import Controller
from multidict import MultiDict

from channels.email import part as email_part
from channels.email.manifest import MANIFEST
from hub.actions.setup import create_inbox
from hub.app import Hub
from hub.metrics import REGISTRY
from tests.channels.conformance import (
    AUTH,
    ChannelConformance,
    Client,
    Harness,
    Request,
    wait_for_status,
)
from tests.realtime.agents import Agent
from tests.support.dovecot import PASSWORD, USER, Dovecot, free_port
from tests.support.provider_mock import Failure, ProviderMock, Recorded

pytestmark = pytest.mark.postgres
SEND = "smtp.send"


class SmtpServer:
    """aiosmtpd on loopback: records every mail in the provider mock and answers the failures
    a test programs there (``Failure(status=451, body=b"4.3.0 try later")``)."""

    def __init__(self, mock: ProviderMock) -> None:
        self.mock = mock
        self.received: list[EmailMessage] = []
        #: the envelope recipients of each mail received (Bcc is only here)
        self.recipients: list[list[str]] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = bytes(envelope.content)
        self.mock.requests.append(Recorded(SEND, "DATA", "/", {}, content, MultiDict()))
        failure = self.mock.take_failure(SEND)
        if failure is not None:
            return f"{failure.status} {failure.body.decode()}"
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


@pytest.fixture(autouse=True)
def quick_sync(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(email_part, "SYNC_EVERY", 0.2)
    yield


@pytest.fixture
def smtp(mock: ProviderMock) -> Iterator[SmtpServer]:
    server = SmtpServer(mock)
    server.controller.start()
    yield server
    server.controller.stop()


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    server = Dovecot(tmp_path / "dovecot").start()
    yield server
    server.stop()


def settings(smtp: SmtpServer, dovecot: Dovecot | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "address": "support@shop.example",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_security": "none",
        "rate_per_second": 1000,
    }
    if dovecot is not None:
        out |= {
            "imap_host": "127.0.0.1",
            "imap_port": dovecot.port,
            "imap_security": "none",
            "poll_seconds": 1,
            "sent_folder": "Sent",
        }
    return out


def customer_mail(
    message_id: str, text: str = "hello", subject: str = "Order 123", **headers: str
) -> bytes:
    m = EmailMessage()
    m["From"] = "Ann <ann@example.com>"
    m["To"] = "support@shop.example"
    m["Subject"] = subject
    m["Message-ID"] = message_id
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content(text)
    return m.as_bytes()


def dsn(original: str, action: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example\r\nTo: support@shop.example\r\nSubject: report\r\n"
        f"Message-ID: <dsn-{hashlib.sha1(f'{original}{action}'.encode()).hexdigest()}@mx>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; "
        'boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nReport.\r\n'
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        f"Final-Recipient: rfc822; ann@example.com\r\nAction: {action}\r\nStatus: 5.1.1\r\n\r\n"
        f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {original}\r\n\r\n--b--\r\n"
    ).encode()


class EmailHarness(Harness):
    manifest = MANIFEST
    provider_statuses = ("failed", "delayed", "delivered", "relayed", "expanded")
    send_operation = SEND
    transient_failure = Failure(451, b"4.3.0 try again later")
    transient_code = "451"
    permanent_failure = Failure(550, b"5.1.1 no such user")
    permanent_code = "550"
    delivered_status = "delivered"
    sent_status = "relayed"
    secret = "webhook-secret-of-the-test"

    def __init__(self, smtp: SmtpServer) -> None:
        self.smtp = smtp

    async def create_inbox(self, hub: Hub, mock: ProviderMock) -> str:
        async with hub.pool.acquire() as conn:
            made = await create_inbox(
                conn,
                hub.box,
                account_id=hub.account_id,
                channel="email",
                name="Shop",
                secrets_in={"webhook_secret": self.secret},
                settings=settings(self.smtp),
            )
        return made.id

    def _signed(self, body: bytes, secret: str | None = None) -> Request:
        digest = hmac.new((secret or self.secret).encode(), body, hashlib.sha256).hexdigest()
        return Request(
            f"/webhooks/email/{self.inbox_id}",
            body,
            {"Content-Type": "message/rfc822", "X-Hub-Signature-256": f"sha256={digest}"},
        )

    def inbound(self, provider_message_id: str, text: str = "hello") -> Request:
        return self._signed(customer_mail(f"<{provider_message_id}>", text))

    def forged(self, provider_message_id: str) -> list[tuple[str, Request]]:
        body = customer_mail(f"<{provider_message_id}@example.com>")
        good = self._signed(body)
        return [
            ("missing", Request(good.path, body, {"Content-Type": "message/rfc822"})),
            ("wrong secret", self._signed(body, "another-secret")),
            ("other content", Request(good.path, body + b"x", good.headers)),
        ]

    def malformed(self) -> list[tuple[str, Request]]:
        return [
            ("empty", self._signed(b"")),
            ("binary", self._signed(b"\x00\x01\x02\x03")),
            ("no sender", self._signed(b"Subject: hi\r\n\r\nno From")),
            ("bad sender", self._signed(b"From: nobody\r\nSubject: hi\r\n\r\nx")),
            ("NUL in id", self._signed(customer_mail("<a\x00b@x>"))),
        ]

    def status(self, provider_message_id: str, provider_status: str) -> Request:
        return self._signed(dsn(f"<{provider_message_id}>", provider_status))


class TestEmailConformance(ChannelConformance):
    @pytest.fixture
    def harness(self, smtp: SmtpServer) -> Harness:
        return EmailHarness(smtp)


async def imap_client(dovecot: Dovecot) -> Any:
    client = aioimaplib.IMAP4("127.0.0.1", dovecot.port, timeout=10)
    await client.wait_hello_from_server()
    assert (await client.login(USER, PASSWORD)).result == "OK"
    return client


async def deliver(dovecot: Dovecot, *mails: bytes) -> None:
    """Mail arriving in the mailbox (APPEND, as a delivery agent would put it there)."""
    client = await imap_client(dovecot)
    for raw in mails:
        assert (await client.append(raw, mailbox="INBOX")).result == "OK"
    await client.logout()


async def until(check: Any, within: float = 20.0) -> Any:
    async with asyncio.timeout(within):
        while not (value := await check()):
            await asyncio.sleep(0.05)
        return value


async def test_mail_in_reply_out_threaded_and_the_customers_answer_joins_the_conversation(
    client: Client, hub: Hub, mock: ProviderMock, smtp: SmtpServer, dovecot: Dovecot, agent: Agent
) -> None:
    async with hub.pool.acquire() as conn:
        inbox = await create_inbox(
            conn, hub.box, account_id=hub.account_id, channel="email", name="Shop",
            secrets_in={"imap_username": USER, "imap_password": PASSWORD},
            settings=settings(smtp, dovecot),
        )  # fmt: skip
    await deliver(dovecot, customer_mail("<first@example.com>", "Where is my order?"))
    row = await until(
        lambda: hub.pool.fetchrow(
            "SELECT conversation_id, content FROM messages WHERE provider_message_id = $1",
            "first@example.com",
        )
    )
    assert row["content"] == "Where is my order?"
    conversation_id = row["conversation_id"]
    await until(lambda: _heard(agent, "first@example.com"))

    reply = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"content": "It ships today"},
        headers=AUTH,
    )
    message_id = (await reply.json())["id"]
    sent = await wait_for_status(hub, message_id, "sent")
    (mail,) = smtp.received
    assert mail["In-Reply-To"] == "<first@example.com>"
    assert "<first@example.com>" in mail["References"]
    assert mail["Subject"] == "Re: Order 123"
    assert mail["Message-ID"] == f"<{sent['provider_message_id']}>"
    assert mail.get_content().strip() == "It ships today"

    # the conversation is resolved; the customer answers the reply: it reopens that conversation
    resolved = await client.patch(
        f"/api/v1/conversations/{conversation_id}",
        json={"status": "resolved"},
        headers=AUTH,
    )
    assert resolved.status in (200, 201), await resolved.text()
    await deliver(
        dovecot,
        customer_mail(
            "<second@example.com>",
            "Thanks!\n\nOn Mon, Shop wrote:\n> It ships today",
            subject="Re: Order 123",
            In_Reply_To=str(mail["Message-ID"]),
            References=f"<first@example.com> {mail['Message-ID']}",
        ),
    )
    second = await until(
        lambda: hub.pool.fetchrow(
            "SELECT conversation_id, content FROM messages WHERE provider_message_id = $1",
            "second@example.com",
        )
    )
    assert second["conversation_id"] == conversation_id
    assert second["content"] == "Thanks!"
    assert await hub.pool.fetchval("SELECT count(*) FROM conversations") == 1
    # the sent copy is in the Sent folder
    imap = await imap_client(dovecot)
    selected = await imap.select('"Sent"')
    assert any(b"1 EXISTS" in line for line in selected.lines if isinstance(line, bytes))
    await imap.logout()
    assert inbox.id


async def _heard(agent: Agent, provider_id: str) -> bool:
    return any(
        e["event"]["payload"].get("provider_message_id") == provider_id
        for e in agent.events
        if e["type"] == "message.received"
    )


async def test_mail_that_arrives_while_the_hub_is_stopped_is_backfilled_exactly_once(
    hub: Hub, smtp: SmtpServer, dovecot: Dovecot
) -> None:
    async with hub.pool.acquire() as conn:
        inbox = await create_inbox(
            conn, hub.box, account_id=hub.account_id, channel="email", name="Shop",
            secrets_in={"imap_username": USER, "imap_password": PASSWORD},
            settings=settings(smtp, dovecot),
        )  # fmt: skip
    await deliver(dovecot, customer_mail("<a1@example.com>"))
    await until(lambda: hub.pool.fetchval("SELECT count(*) FROM messages"))
    reader = email_part.email_of(hub)
    assert reader is not None
    await reader.stop()  # the hub's reader is away
    await deliver(
        dovecot,
        *(customer_mail(f"<b{n}@example.com>", f"while away {n}", subject=f"S{n}")
          for n in range(5)),
        b"From: broken\r\n\r\n\xff\xfe not a mail",
        customer_mail("<auto@example.com>", "I am on holiday", Auto_Submitted="auto-replied"),
    )  # fmt: skip
    await reader.start(hub)  # back: it reads from where it stopped
    await until(lambda: _count(hub, "SELECT count(*) FROM email_rejects", 2))
    await until(lambda: _count(hub, "SELECT count(*) FROM messages", 6))
    # read again from the start (the cursor lost): each mail is still stored once
    await reader.stop()
    await hub.pool.execute("UPDATE email_mailboxes SET last_uid = 0")
    await reader.start(hub)
    await until(lambda: _count(hub, "SELECT count(*) FROM email_rejects", 2))
    await asyncio.sleep(1.5)
    await until(
        lambda: _count(hub, "SELECT last_uid FROM email_mailboxes WHERE inbox_id = $1", 8, inbox.id)
    )
    assert await hub.pool.fetchval("SELECT count(*) FROM messages") == 6
    reasons = [r["reason"] for r in await hub.pool.fetch("SELECT reason FROM email_rejects")]
    assert any(r.startswith("not_taken") for r in reasons)
    assert any(r.startswith("rejected") for r in reasons)


async def _count(hub: Hub, query: str, expected: int, *args: Any) -> bool:
    value = await hub.pool.fetchval(query, *args)
    return bool(value == expected)


async def test_a_mailbox_that_refuses_the_login_shows_the_error(
    client: Client, hub: Hub, smtp: SmtpServer, dovecot: Dovecot
) -> None:
    async with hub.pool.acquire() as conn:
        inbox = await create_inbox(
            conn, hub.box, account_id=hub.account_id, channel="email", name="Shop",
            secrets_in={"imap_username": USER, "imap_password": "wrong"},
            settings=settings(smtp, dovecot),
        )  # fmt: skip
    error = await until(
        lambda: hub.pool.fetchval("SELECT error FROM email_mailboxes WHERE inbox_id = $1", inbox.id)
    )
    assert "refused the login" in error
    ready = await (await client.get("/readyz")).json()
    assert ready["checks"]["email"][inbox.id].startswith("error:")
    assert REGISTRY.get_sample_value("hub_email_mailbox_up", {"inbox": inbox.id}) == 0
    # the inbox API shows it too, and the mailbox connected once the password is right
    shown = await (await client.get(f"/api/v1/inboxes/{inbox.id}", headers=AUTH)).json()
    assert shown["mailbox"]["state"] == "error"
    assert "refused the login" in shown["mailbox"]["error"] and shown["mailbox"]["error_at"]
    fixed = await client.patch(
        f"/api/v1/inboxes/{inbox.id}",
        json={"credentials": {"imap_password": PASSWORD}},
        headers=AUTH,
    )
    assert fixed.status == 200, await fixed.text()

    async def connected() -> Any:
        page = await (await client.get("/api/v1/inboxes", headers=AUTH)).json()
        mailbox = {i["id"]: i for i in page["data"]}[inbox.id]["mailbox"]
        return mailbox if mailbox["state"] == "connected" else None

    mailbox = await until(connected)
    assert mailbox["error"] is None and mailbox["checked_at"] and mailbox["folder"] == "INBOX"


async def test_a_reply_with_cc_bcc_and_its_own_subject(
    client: Client, hub: Hub, mock: ProviderMock, smtp: SmtpServer
) -> None:
    """Cc in the header and the envelope, Bcc only in the envelope, the subject as the agent
    kept it; the options are stored on the message; bad ones and non-email inboxes refused."""
    harness = EmailHarness(smtp)
    harness.inbox_id = await harness.create_inbox(hub, mock)
    first = harness.inbound("cc-first@example.com", "Can my sister get the invoice too?")
    posted = await client.post(first.path, data=first.body, headers=first.headers)
    assert posted.status == 200, await posted.text()
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    path = f"/api/v1/conversations/{conversation_id}/messages"
    options = {
        "cc": ["Sister@Example.com"],
        "bcc": ["accounts@shop.example"],
        "subject": "Re: Order 123 (invoice)",
    }
    for bad in ({"cc": ["not an address"]}, {"subject": "two\r\nBcc: x@evil.example"}):
        refused = await client.post(path, json={"content": "x", "email": bad}, headers=AUTH)
        assert refused.status == 422, await refused.text()
    note = await client.post(
        path, json={"content": "x", "private": True, "email": options}, headers=AUTH
    )
    assert (await note.json())["error"]["code"] == "email_options_not_supported"

    reply = await client.post(
        path, json={"content": "Sent to you both", "email": options}, headers=AUTH
    )
    assert reply.status == 201, await reply.text()
    message_id = (await reply.json())["id"]
    await wait_for_status(hub, message_id, "sent")
    (mail,) = smtp.received
    assert mail["Cc"] == "Sister@example.com"
    assert mail["Bcc"] is None
    assert mail["Subject"] == "Re: Order 123 (invoice)"
    assert mail["In-Reply-To"] == "<cc-first@example.com>"
    assert smtp.recipients == [["ann@example.com", "Sister@example.com", "accounts@shop.example"]]
    listed = await client.get(path, headers=AUTH)
    stored = next(m for m in (await listed.json())["data"] if m["id"] == message_id)
    assert stored["email"] == options


async def test_email_options_are_refused_outside_email_inboxes(client: Client, hub: Hub) -> None:
    from tests.support.api_channel import ApiInbox, api_body

    inbox = await ApiInbox.create(hub, str(client.make_url("")))
    body = api_body("o-1")
    await inbox.post(client.session, body)
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    refused = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"content": "x", "email": {"cc": ["a@example.com"]}},
        headers=AUTH,
    )
    assert refused.status == 422
    assert (await refused.json())["error"]["code"] == "email_options_not_supported"
