"""The email parser: charsets, encoded words, alternatives, files, threading headers, quotes,
sanitising, auto-replies, bounces, addresses and header injection."""

from __future__ import annotations

import base64
from email.message import EmailMessage

import pytest

from channels._base import InboxContext, OutboundMessage, SendError
from channels.email import mime
from channels.email.addresses import header_safe, normalise
from channels.email.outbound import compose
from channels.email.text import main_text, thread_subject
from hub.events import MessageStatus

SETTINGS = {"address": "support@shop.example"}


def mail(body: str = "Hello", **headers: str) -> bytes:
    m = EmailMessage()
    m["From"] = headers.pop("From", "Ann <ann@Example.COM>")
    m["To"] = "support@shop.example"
    m["Subject"] = headers.pop("Subject", "Order 123")
    m["Message-ID"] = headers.pop("Message_ID", "<m1@example.com>")
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content(body)
    return m.as_bytes()


def test_a_plain_mail_becomes_a_message_with_its_ids_and_subject_key() -> None:
    raw = mail(In_Reply_To="<out-1@shop.example>", References="<a@x> <out-1@shop.example>")
    parsed = mime.parse(raw, SETTINGS)
    (m,) = parsed.messages
    assert m.provider_message_id == "m1@example.com"
    assert m.sender.address == "ann@example.com" and m.sender.name == "Ann"
    assert m.content == "Hello"
    assert m.thread is not None
    assert m.thread.refs == ("out-1@shop.example", "a@x")
    assert m.thread.key == "Order 123"
    assert [f.filename for f in m.media] == ["original.eml"]
    assert m.media[0].data == raw


def test_encoded_words_charsets_and_a_bad_charset() -> None:
    raw = (
        b"From: =?utf-8?b?" + base64.b64encode("Šárka".encode()) + b"?= <s@example.com>\r\n"
        b"Subject: =?iso-8859-1?q?R=E9sum=E9?=\r\nMessage-ID: <c@x>\r\n"
        b"Content-Type: text/plain; charset=no-such-charset\r\n\r\nCaf\xe9\r\n"
    )
    (m,) = mime.parse(raw, SETTINGS).messages
    assert m.sender.name == "Šárka"
    assert m.thread is not None and m.thread.key == "Résumé"
    assert m.content is not None and m.content.startswith("Caf")


def test_html_is_sanitised_and_a_text_version_made() -> None:
    m = EmailMessage()
    m["From"] = "x@example.com"
    m["Message-ID"] = "<h@x>"
    m.set_content(
        '<p>Hi <b>there</b></p><script>alert(1)</script><img src="https://t.example/p.gif">'
        '<img src="cid:logo"><a href="javascript:alert(1)">x</a>',
        subtype="html",
    )
    (parsed,) = mime.parse(m.as_bytes(), SETTINGS).messages
    assert parsed.content == "Hi there\nx"
    html = next(f for f in parsed.media if f.filename == "message.html").data
    assert html is not None
    assert b"script" not in html and b"t.example" not in html and b"javascript" not in html
    assert b'src="cid:logo"' in html


def test_alternative_inline_image_and_attachments_and_the_size_limit() -> None:
    m = EmailMessage()
    m["From"] = "x@example.com"
    m["Message-ID"] = "<a@x>"
    m.set_content("plain words")
    m.add_alternative("<p>html words</p>", subtype="html")
    m.add_attachment(b"PNG" * 10, maintype="image", subtype="png", filename="a.png")
    m.add_attachment(b"0" * 2000, maintype="application", subtype="zip", filename="big.zip")
    (parsed,) = mime.parse(m.as_bytes(), {**SETTINGS, "max_attachment_bytes": 1000}).messages
    assert parsed.content == "plain words"
    names = {f.filename for f in parsed.media}
    assert {"a.png", "original.eml", "message.html"} <= names
    assert [(a.filename, a.url) for a in parsed.attachments] == [("big.zip", "")]


def test_quoted_thread_and_signature_are_cut_from_the_main_text() -> None:
    text = "Thanks, that works.\n\n-- \nAnn\n\nOn Mon, 1 Jan 2024, Shop <s@x> wrote:\n> old"
    assert main_text(text) == "Thanks, that works."
    assert main_text("Yes\nAm 1. Jan 2024 schrieb Shop:\n> alt") == "Yes"
    assert main_text("> only a quote") == "> only a quote"


@pytest.mark.parametrize(
    ("subject", "key"),
    [
        ("Re: Order 123", "Order 123"),
        ("RE : AW: Fwd: Order 123", "Order 123"),
        ("SV: VS: Order  123", "Order 123"),
        ("Re[2]: Order 123", "Order 123"),
        ("Order 123", "Order 123"),
        ("Re:", None),
    ],
)
def test_subject_prefixes(subject: str, key: str | None) -> None:
    assert thread_subject(subject) == key


@pytest.mark.parametrize(
    "headers",
    [{"Auto_Submitted": "auto-replied"}, {"X_Autoreply": "yes"}, {"Precedence": "bulk"}],
)
def test_auto_replies_are_not_taken(headers: dict[str, str]) -> None:
    with pytest.raises(mime.NotTaken):
        mime.parse(mail(**headers), SETTINGS)


def dsn(action: str, original: str = "<out-1@shop.example>") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example\r\nTo: support@shop.example\r\nSubject: failure\r\n"
        "Message-ID: <dsn1@mx.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example\r\n\r\n"
        f"Final-Recipient: rfc822; ann@example.com\r\nAction: {action}\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {original}\r\nSubject: Re: Order 123\r\n\r\n--b--\r\n"
    ).encode()


def test_a_bounce_is_a_failed_status_of_the_message_it_bounces() -> None:
    parsed = mime.parse(dsn("failed"), SETTINGS)
    assert not parsed.messages
    (status,) = parsed.statuses
    assert status.provider_message_id == "out-1@shop.example"
    assert status.status == MessageStatus.FAILED
    assert status.error_code == "5.1.1" and "no such user" in (status.error_message or "")
    with pytest.raises(mime.Unreadable):
        mime.parse(dsn("exploded"), SETTINGS)


@pytest.mark.parametrize("raw", [b"", b"\x00\x01\x02", b"Subject: no sender\r\n\r\nhi"])
def test_unreadable_mail_is_refused_with_a_reason(raw: bytes) -> None:
    with pytest.raises(mime.Unreadable):
        mime.parse(raw, SETTINGS)


def test_addresses() -> None:
    assert normalise("Ann+shop@Example.COM") == "Ann+shop@example.com"
    assert normalise("ann+shop@example.com", {"plus_addressing": True}) == "ann@example.com"
    assert normalise("not an address") is None
    assert normalise("a@b.c\r\nBcc: x@y.z") is None
    assert header_safe("Hi\r\nBcc: evil@example.com") == "Hi Bcc: evil@example.com"


def test_replies_are_threaded_and_injection_is_neutralised() -> None:
    inbox = InboxContext(
        "ib1", "ac1", "email", "Shop\r\nBcc: evil@x.example", "reopen", SETTINGS, {}
    )
    out = OutboundMessage(
        "01MSG", "c1", "ann@example.com", "Sure",
        thread_refs=("imap:1:2", "m1@example.com", "m2@example.com"),
        thread_key="Order 123\r\nBcc: evil@x.example",
    )  # fmt: skip
    composed = compose(inbox, out, [])
    raw = composed.as_bytes()
    assert b"\nBcc:" not in raw
    assert composed["In-Reply-To"] == "<m2@example.com>"
    assert composed["References"] == "<m1@example.com> <m2@example.com>"
    assert composed["Subject"].startswith("Re: Order 123")
    with pytest.raises(SendError):
        compose(inbox, OutboundMessage("01M", "c1", "x@y.z\r\nBcc: e@x", "hi"), [])
