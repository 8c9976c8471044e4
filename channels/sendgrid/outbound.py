"""Replies through SendGrid's v3 Mail Send with the official ``sendgrid`` SDK.

The mail is composed as email's SMTP replies are (``channels.email.outbound.compose``: From,
Subject, Message-ID, In-Reply-To, References, attachments, header-safe names), then handed to
the SDK's ``Mail`` helper; the Message-ID and the thread headers go as custom headers, so the
customer's mail client threads the reply, and the Message-ID goes as the custom argument
``hub_message_id`` too, so the Event Webhook's events name the reply. The SDK is synchronous
(urllib): each call runs in a worker thread, never on the event loop.

SendGrid answers 202 with ``X-Message-Id``; 429 and 5xx are retried by the shared dispatcher
(honouring ``Retry-After``), other 4xx are final with SendGrid's first error message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from typing import Any

from python_http_client.exceptions import HTTPError  # type: ignore[import-untyped]
from sendgrid import SendGridAPIClient  # type: ignore[import-untyped]
from sendgrid.helpers.mail import (  # type: ignore[import-untyped]
    Attachment,
    Bcc,
    Cc,
    ContentId,
    CustomArg,
    Disposition,
    FileContent,
    FileName,
    FileType,
    From,
    Header,
    Mail,
    To,
)

from channels._base import InboxContext, OutboundMessage, SendError, SendResult
from channels.email.outbound import _addresses, _files, compose
from channels.sendgrid.events import MESSAGE_ARG
from hub.media import MediaStore

DEFAULT_HOST = "https://api.sendgrid.com"
TIMEOUT = 30.0
THREAD_HEADERS = ("Message-ID", "In-Reply-To", "References", "Auto-Submitted")


def _host(settings: Mapping[str, Any]) -> str:
    value = settings.get("api_base_url")
    return value.rstrip("/") if isinstance(value, str) and value else DEFAULT_HOST


def request_body(
    mail: EmailMessage, files: list[tuple[str, str, bytes]], bcc: Sequence[str] = ()
) -> dict[str, Any]:
    """The v3 Mail Send body for a composed reply (its Cc header; ``bcc`` in no header)."""
    sender = mail["From"]
    message = Mail(
        from_email=From(sender.addresses[0].addr_spec, sender.addresses[0].display_name or None),
        to_emails=To(str(mail["To"])),
        subject=str(mail["Subject"]),
        plain_text_content=mail.get_content() or " ",
    )
    for address in mail["Cc"].addresses if mail["Cc"] is not None else ():
        message.add_cc(Cc(address.addr_spec))
    for address in bcc:
        message.add_bcc(Bcc(address))
    for name in THREAD_HEADERS:
        if mail[name] is not None:
            message.header = Header(name, str(mail[name]))
    message.custom_arg = CustomArg(MESSAGE_ARG, message_id(mail))
    for filename, content_type, data in files:
        message.attachment = Attachment(
            FileContent(base64.b64encode(data).decode()),
            FileName(filename),
            FileType(content_type),
            Disposition("attachment"),
            ContentId(None),
        )
    body: dict[str, Any] = message.get()
    return body


def message_id(mail: EmailMessage) -> str:
    return str(mail["Message-ID"]).strip().strip("<>")


def _post(host: str, api_key: str, body: dict[str, Any]) -> tuple[int, Mapping[str, str]]:
    client = SendGridAPIClient(api_key=api_key, host=host)
    client.client.timeout = TIMEOUT
    response = client.send(body)
    return int(response.status_code), response.headers


def _refusal(exc: HTTPError) -> SendError:
    status = int(exc.status_code)
    text = ""
    try:
        errors = json.loads(exc.body or b"{}").get("errors") or []
        text = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        text = ""
    retry_after: float | None = None
    header = exc.headers.get("Retry-After") if exc.headers is not None else None
    if header is not None and str(header).strip().isdigit():
        retry_after = float(str(header).strip())
    return SendError(
        str(status),
        (text or f"SendGrid answered {status}")[:1024],
        retryable=status == 429 or status >= 500,
        retry_after=retry_after,
    )


async def send(
    inbox: InboxContext, message: OutboundMessage, media: MediaStore | None
) -> SendResult:
    api_key = inbox.secrets.get("api_key")
    if not isinstance(api_key, str) or not api_key:
        raise SendError("not_configured", "the inbox has no SendGrid api_key", retryable=False)
    files = await _files(media, message)
    mail = compose(inbox, message, files)
    body = request_body(mail, files, _addresses((message.email or {}).get("bcc")))
    try:
        status, _headers = await asyncio.to_thread(_post, _host(inbox.settings), api_key, body)
    except HTTPError as exc:
        raise _refusal(exc) from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise SendError("network_error", repr(exc)[:300], retryable=True) from exc
    if status != 202:
        raise SendError(str(status), f"SendGrid answered {status}", retryable=status >= 500)
    return SendResult(message_id(mail))
