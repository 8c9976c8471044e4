"""Replies out over SMTP (aiosmtplib): threaded for the customer's mail client (Message-ID,
In-Reply-To, References, the thread's subject), with the inbox's From, the agent's files
attached, and a copy appended to the Sent folder when the inbox has one.

SMTP's own reply codes are the error codes: 4xx and dropped connections are retried by the
shared dispatcher, 5xx are final. Names and subjects are stripped of line breaks before they
become headers (no header injection), and a recipient that is not a plain address is refused.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

import aiosmtplib

from channels._base import InboxContext, OutboundMessage, SendError, SendResult
from channels.email.addresses import header_safe, normalise
from channels.email.mime import BARE_ID, OWN_IDS
from hub.media import MediaNotFound, MediaStore

log = logging.getLogger(__name__)
TIMEOUT = 30.0
MAX_OUTBOUND_BYTES = 25 * 1024 * 1024


def _int(settings: Mapping[str, Any], key: str, default: int) -> int:
    value = settings.get(key, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def tls_context(settings: Mapping[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.get("tls_verify") is False:  # a test server's self-signed certificate
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def _files(
    media: MediaStore | None, message: OutboundMessage
) -> list[tuple[str, str, bytes]]:
    out: list[tuple[str, str, bytes]] = []
    total = 0
    for attachment in message.attachments:
        url = str(attachment.get("url") or "")
        key = url.rsplit("/", 1)[-1] if url.startswith("/api/v1/media/") else ""
        if not key or media is None:
            raise SendError("media_unavailable", "an attachment is not in the hub", retryable=False)
        data = bytearray()
        try:
            async for chunk in media.open(key):
                data += chunk
                total += len(chunk)
                if total > MAX_OUTBOUND_BYTES:
                    raise SendError("too_large", "attachments over 25 MB", retryable=False)
        except MediaNotFound as exc:
            raise SendError("media_unavailable", "an attachment is gone", retryable=False) from exc
        out.append(
            (
                header_safe(str(attachment.get("filename") or "file"), 255) or "file",
                str(attachment.get("content_type") or "application/octet-stream"),
                bytes(data),
            )
        )
    return out


def _addresses(values: object) -> list[str]:
    """The agent's Cc or Bcc list, each a plain address (anything else is refused, final)."""
    out: list[str] = []
    for value in values if isinstance(values, list) else []:
        address = normalise(str(value))
        if address is None:
            raise SendError("invalid_recipient", f"{value!r} is not an address", retryable=False)
        out.append(address)
    return out


def recipients(message: OutboundMessage, mail: EmailMessage) -> list[str]:
    """Who the mail goes to: To and Cc from its headers, and the Bcc no header shows."""
    everyone = [str(mail["To"]), *_addresses((message.email or {}).get("cc"))]
    everyone += _addresses((message.email or {}).get("bcc"))
    return list(dict.fromkeys(everyone))


def compose(
    inbox: InboxContext, message: OutboundMessage, files: list[tuple[str, str, bytes]]
) -> EmailMessage:
    settings = inbox.settings
    sender = normalise(str(settings.get("address") or ""))
    to = normalise(message.to)
    if sender is None:
        raise SendError("not_configured", "the inbox's address is not an address", retryable=False)
    if to is None:
        raise SendError("invalid_recipient", "the contact's address is not valid", retryable=False)
    mail = EmailMessage()
    mail["From"] = formataddr((header_safe(settings.get("from_name") or inbox.name, 200), sender))
    mail["To"] = to
    options = message.email or {}
    cc = _addresses(options.get("cc"))
    if cc:
        mail["Cc"] = ", ".join(cc)
    topic = header_safe(message.thread_key, 900)
    chosen = header_safe(options.get("subject"), 900)
    mail["Subject"] = chosen or (
        f"Re: {topic}" if topic else header_safe(f"Message from {inbox.name}", 900)
    )
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = make_msgid(idstring=message.message_id, domain=sender.split("@")[1])
    refs = [
        f"<{r}>" for r in message.thread_refs if BARE_ID.fullmatch(r) and not r.startswith(OWN_IDS)
    ]
    if refs:
        mail["In-Reply-To"] = refs[-1]
        mail["References"] = " ".join(refs[-20:])
    mail["Auto-Submitted"] = "no"
    mail.set_content(message.content or "")
    for filename, content_type, data in files:
        maintype, _, subtype = content_type.partition("/")
        mail.add_attachment(
            data, maintype=maintype or "application", subtype=subtype or "octet-stream",
            filename=filename,
        )  # fmt: skip
    return mail


async def send(
    inbox: InboxContext, message: OutboundMessage, media: MediaStore | None
) -> tuple[SendResult, EmailMessage]:
    settings, secrets = inbox.settings, inbox.secrets
    host = settings.get("smtp_host")
    if not isinstance(host, str) or not host:
        raise SendError("not_configured", "the inbox has no smtp_host", retryable=False)
    mail = compose(inbox, message, await _files(media, message))
    security = settings.get("smtp_security", "tls")
    user, password = secrets.get("smtp_username"), secrets.get("smtp_password")
    try:
        await aiosmtplib.send(
            mail,
            recipients=recipients(message, mail),
            hostname=host,
            port=_int(settings, "smtp_port", 465 if security == "tls" else 587),
            username=str(user) if user else None,
            password=str(password) if password else None,
            use_tls=security == "tls",
            start_tls=security == "starttls",
            tls_context=tls_context(settings) if security != "none" else None,
            timeout=TIMEOUT,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        first = exc.recipients[0] if exc.recipients else None
        code = first.code if first is not None else 550
        text = first.message if first is not None else "recipient refused"
        raise SendError(str(code), text, retryable=400 <= code < 500) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise SendError(str(exc.code), exc.message, retryable=400 <= exc.code < 500) from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise SendError("network_error", repr(exc)[:300], retryable=True) from exc
    return SendResult(str(mail["Message-ID"]).strip().strip("<>")), mail
