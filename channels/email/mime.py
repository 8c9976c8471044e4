"""One email (RFC 5322 bytes) as the hub's canonical message, delivery report or refusal.

Parsed with the standard library (``email``, policy ``default``): encoded words and charsets
decoded (an unknown charset falls back to replacement characters, never an error), the
``multipart/alternative`` text chosen, inline images and attachments carried as files to store
(those past the inbox's limit announced without content), HTML sanitised, the quoted thread and
signature cut from the main text, and the Message-ID, In-Reply-To and References kept for
threading. Auto-replies are recognised and not taken in (no auto-reply loops); delivery status
notifications (``multipart/report``) become the status of the message they bounce.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from channels._base import (
    InboundMessage,
    MediaRef,
    Sender,
    StatusUpdate,
    ThreadHint,
)
from channels.email.addresses import EMAIL, normalise
from channels.email.manifest import MANIFEST
from channels.email.text import html_to_text, main_text, sanitise_html, thread_subject
from hub.events import Attachment
from hub.events.types import TOO_LARGE

#: the largest attachment kept by default (what most mail services accept in one message)
MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
MAX_PARTS = 200
MESSAGE_ID = re.compile(r"<([^<>\s]{1,900})>")
#: a Message-ID as the hub keeps it (without the angle brackets)
BARE_ID = re.compile(r"[^<>\s]{1,900}")
#: the provider ids the hub makes for mail without a Message-ID (never sent as references)
OWN_IDS = ("imap:", "sha256:")


class Unreadable(Exception):
    """The mail cannot be taken in; the reason is recorded and the mailbox keeps flowing."""


class NotTaken(Exception):
    """A mail deliberately not taken in (an auto-reply); recorded with the reason."""


@dataclasses.dataclass(frozen=True)
class Parsed:
    messages: tuple[InboundMessage, ...] = ()
    statuses: tuple[StatusUpdate, ...] = ()


def _text(value: object) -> str:
    return str(value) if value is not None else ""


def message_ids(value: object) -> list[str]:
    """The ids of a Message-ID, In-Reply-To or References header, in order, without their
    angle brackets (how the hub stores them as provider message ids)."""
    return [i for i in MESSAGE_ID.findall(_text(value)) if BARE_ID.fullmatch(i)]


def is_auto_reply(msg: Message) -> bool:
    auto = _text(msg.get("Auto-Submitted")).strip().lower()
    precedence = _text(msg.get("Precedence")).strip().lower()
    return (
        (bool(auto) and auto != "no")
        or msg.get("X-Autoreply") is not None
        or msg.get("X-Autorespond") is not None
        or precedence in ("auto_reply", "bulk", "junk")
    )


def _decoded(part: Message) -> str:
    """A text part's content; charsets Python does not know fall back to replacement
    characters."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def _size_limit(settings: Mapping[str, Any]) -> int:
    value = settings.get("max_attachment_bytes")
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 100 * 2**20:
        return value
    return MAX_ATTACHMENT_BYTES


def _thread_window(settings: Mapping[str, Any]) -> timedelta:
    value = settings.get("thread_window_days")
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 3650:
        return timedelta(days=value)
    return timedelta(days=30)


def _clean(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = value.replace("\x00", "")
    return value[:limit] or None


@dataclasses.dataclass
class _Body:
    plain: str | None = None
    html: str | None = None
    files: list[MediaRef] = dataclasses.field(default_factory=list)
    too_large: list[Attachment] = dataclasses.field(default_factory=list)


def _walk(msg: Message, limit: int) -> _Body:
    body = _Body()
    parts = 0
    for part in msg.walk():
        parts += 1
        if parts > MAX_PARTS:
            raise Unreadable(f"more than {MAX_PARTS} MIME parts")
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        disposition = (part.get_content_disposition() or "").lower()
        filename = _clean(part.get_filename(), 255)
        if kind in ("text/plain", "text/html") and disposition != "attachment" and not filename:
            text = _decoded(part)
            if kind == "text/plain" and body.plain is None:
                body.plain = text
            elif kind == "text/html" and body.html is None:
                body.html = text
            continue
        payload = part.get_payload(decode=True)
        if kind == "message/rfc822" or not isinstance(payload, bytes):
            # an attached mail: kept whole as a file (never parsed into this one)
            payload = part.as_bytes() if not isinstance(payload, bytes) else payload
            filename = filename or "attached.eml"
        content_id = _text(part.get("Content-ID")).strip().strip("<>")
        name = filename or (f"{content_id or 'part'}" + _extension(kind))
        if len(payload) > limit:
            body.too_large.append(
                Attachment(
                    url="",
                    content_type=kind,
                    filename=name,
                    size=len(payload),
                    unavailable=TOO_LARGE,
                )
            )
            continue
        body.files.append(MediaRef(ref=f"cid:{content_id}" if content_id else f"part:{parts}",
                                   content_type=kind, filename=name, data=payload))  # fmt: skip
    return body


def _extension(kind: str) -> str:
    import mimetypes

    return mimetypes.guess_extension(kind) or ""


def _sender(msg: Message, settings: Mapping[str, Any]) -> Sender:
    raw = _text(msg.get("Reply-To") if settings.get("use_reply_to") is True else None) or _text(
        msg.get("From")
    )
    pairs = getaddresses([raw])
    if not pairs or not pairs[0][1]:
        raise Unreadable("the mail has no From address")
    name, address = pairs[0]
    normal = normalise(address, settings)
    if normal is None:
        raise Unreadable("the From address is not an email address")
    return Sender(channel=EMAIL, address=normal, name=_clean(name, 255))


def _sent_at(msg: Message) -> datetime | None:
    try:
        when = parsedate_to_datetime(_text(msg.get("Date")))
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (
        when if datetime(1970, 1, 2, tzinfo=UTC) < when < datetime(9000, 1, 1, tzinfo=UTC) else None
    )


def _report(msg: Message) -> tuple[StatusUpdate, ...]:
    """A delivery status notification (RFC 3464) as status reports of the bounced message."""
    original: str | None = None
    fields: list[Message] = []
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            payload = part.get_payload()
            if isinstance(payload, list):
                fields.extend(p for p in payload if isinstance(p, Message))
        elif kind in ("text/rfc822-headers", "message/rfc822-headers"):
            content = part.get_payload(decode=True)
            headers = email.message_from_bytes(
                content if isinstance(content, bytes) else b"", policy=email.policy.default
            )
            original = next(iter(message_ids(headers.get("Message-ID"))), original)
        elif kind == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                original = next(iter(message_ids(inner[0].get("Message-ID"))), original)
    for block in fields:
        original = original or next(iter(message_ids(block.get("Original-Message-ID"))), None)
    if original is None:
        raise Unreadable("a delivery report that names no message of ours")
    updates: list[StatusUpdate] = []
    for block in fields:
        action = _text(block.get("Action")).strip().lower()
        if not action:
            continue
        status = MANIFEST.status_for(action)
        if status is None:
            raise Unreadable(f"a delivery report with an unknown action {action[:40]!r}")
        code = _clean(_text(block.get("Status")).strip(), 32)
        diagnostic = _clean(_text(block.get("Diagnostic-Code")).strip(), 1024)
        failed = status.value == "failed"
        updates.append(
            StatusUpdate(
                original,
                status,
                action,
                code if failed else None,
                (diagnostic or f"delivery {action}") if failed else None,
            )
        )
    if not updates:
        raise Unreadable("a delivery report without an Action")
    # one report per message: the worst outcome among its recipients
    order = {"failed": 0, "delayed": 1, "relayed": 2, "expanded": 3, "delivered": 3}
    return (min(updates, key=lambda u: order.get(u.provider_status, 9)),)


def parse(raw: bytes, settings: Mapping[str, Any], fallback_id: str | None = None) -> Parsed:
    """The mail as messages or status reports; :class:`Unreadable` or :class:`NotTaken`."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception as exc:  # the parser is lenient; anything it still throws is bad input
        raise Unreadable(f"the mail cannot be parsed: {type(exc).__name__}") from exc
    try:
        return _parse(msg, raw, settings, fallback_id)
    except (Unreadable, NotTaken):
        raise
    except (LookupError, ValueError, TypeError, AttributeError, IndexError) as exc:
        # malformed headers the library meets only when read (a broken encoded word, ...)
        raise Unreadable(f"the mail cannot be read: {type(exc).__name__}: {exc}"[:300]) from exc


def _parse(
    msg: Message, raw: bytes, settings: Mapping[str, Any], fallback_id: str | None
) -> Parsed:
    if not isinstance(msg, EmailMessage) or (not msg.keys() and not msg.get_payload()):
        raise Unreadable("not an email")
    if msg.get_content_type() == "multipart/report" and (
        _text(msg.get_param("report-type")).lower() == "delivery-status"
    ):
        return Parsed(statuses=_report(msg))
    if is_auto_reply(msg):
        raise NotTaken("an automatic reply")
    sender = _sender(msg, settings)
    own = message_ids(msg.get("Message-ID"))
    provider_id = own[0] if own else fallback_id or "sha256:" + hashlib.sha256(raw).hexdigest()
    body = _walk(msg, _size_limit(settings))
    clean_html = sanitise_html(body.html) if body.html else None
    full = body.plain if body.plain is not None else html_to_text(clean_html or "")
    full = full.replace("\x00", "")
    subject = _clean(_text(msg.get("Subject")), 998)
    shown = main_text(full) if full.strip() else (subject or "")
    refs = message_ids(msg.get("References")) + message_ids(msg.get("In-Reply-To"))
    # strongest first: the message answered, then the rest of the thread, newest first
    ordered = list(dict.fromkeys(reversed(refs)))[:50]
    files = list(body.files)
    # the full original, viewable and downloadable next to the main text
    files.append(
        MediaRef(ref="original", content_type="message/rfc822", filename="original.eml", data=raw)
    )
    if clean_html:
        files.append(
            MediaRef(
                ref="html",
                content_type="text/html",
                filename="message.html",
                data=clean_html.encode(),
            )
        )
    message = InboundMessage(
        provider_message_id=provider_id[:900],
        sender=sender,
        content=shown[:60_000] or None,
        content_type="text",
        attachments=tuple(body.too_large),
        sent_at=_sent_at(msg),
        media=tuple(files),
        reply_to=ordered[0] if ordered else None,
        thread=ThreadHint(
            refs=tuple(r for r in ordered if r != provider_id),
            key=thread_subject(subject),
            key_within=_thread_window(settings),
        ),
    )
    return Parsed(messages=(message,))
