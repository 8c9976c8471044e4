"""The API channel: inbound webhook, delivery reports, and replies pushed to the customer.

Inbound, the body is JSON (see the README), signed with HMAC-SHA256 of the raw body under the
inbox's signing secret, sent as ``X-Hub-Signature-256: sha256=<hex>``. The signature is checked
before the body is even parsed, and a missing secret refuses everything. A body of the form
``{"statuses": [{"message_id", "status", "error_code"?, "error_message"?}]}`` reports the delivery
of replies the hub pushed (``message_id`` is the id the customer's system answered with).

Outbound (only when the inbox has an ``outbound_url`` setting; otherwise replies stay ``queued``
for the customer's system to read over the REST API): the reply is POSTed as JSON to that URL,
signed the same way. A 2xx answer may carry ``{"message_id"}``; 429 and 5xx are retried
(``Retry-After`` honoured); any other status fails the reply with the answer's
``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import aiohttp
import msgspec
import orjson

from channels._base import (
    BaseAdapter,
    InboundMessage,
    InboxContext,
    OutboundMessage,
    Sender,
    SendError,
    SendResult,
    SettingsInvalid,
    StatusUpdate,
    WebhookRejected,
    WebhookRequest,
    WebhookResult,
    verify_hmac_sha256,
)
from channels._base.bodies import decode_json, no_nul
from channels._base.signatures import sign_hmac_sha256
from channels.api.manifest import MANIFEST, SIGNATURE_HEADER
from hub.events import Attachment

Short = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Text = Annotated[str, msgspec.Meta(max_length=1024)]


class ContactIn(msgspec.Struct, forbid_unknown_fields=False):
    identifier: Short
    name: Annotated[str, msgspec.Meta(max_length=255)] | None = None


class AttachmentIn(msgspec.Struct):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
    content_type: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    filename: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    size: Annotated[int, msgspec.Meta(ge=0)] | None = None


class ApiMessageIn(msgspec.Struct):
    contact: ContactIn
    message_id: Short | None = None
    text: Annotated[str, msgspec.Meta(max_length=65_536)] | None = None
    attachments: Annotated[list[AttachmentIn], msgspec.Meta(max_length=20)] = []
    sent_at: datetime | None = None


class ApiStatusIn(msgspec.Struct, forbid_unknown_fields=True):
    message_id: Short
    status: Short
    error_code: Text | None = None
    error_message: Text | None = None


class ApiStatusesIn(msgspec.Struct, forbid_unknown_fields=True):
    statuses: Annotated[list[ApiStatusIn], msgspec.Meta(min_length=1, max_length=100)]


class _Sent(msgspec.Struct):
    message_id: Short | None = None


class _ErrorBody(msgspec.Struct):
    code: Text | int | None = None
    message: Text | None = None


class _Refusal(msgspec.Struct):
    error: _ErrorBody | None = None


_decoder = msgspec.json.Decoder(ApiMessageIn)
_status_decoder = msgspec.json.Decoder(ApiStatusesIn)


def _check_sent_at(sent_at: datetime | None) -> None:
    """RFC 3339 needs an offset; without one the instant is unknown (whose local time?)."""
    if sent_at is None:
        return
    if sent_at.tzinfo is None:
        raise WebhookRejected(
            400, "invalid_sent_at", "`sent_at` needs an offset (RFC 3339: Z or +hh:mm)"
        )
    try:
        sent_at.astimezone(UTC)
    except OverflowError as exc:
        raise WebhookRejected(400, "invalid_sent_at", "`sent_at` is out of range") from exc


def parse_body(body: bytes) -> InboundMessage:
    """Parse a verified body; every problem is a :class:`WebhookRejected` with a 4xx status."""
    data: ApiMessageIn = decode_json(_decoder, body)
    no_nul(data.message_id, data.text, data.contact.identifier, data.contact.name)
    for a in data.attachments:
        no_nul(a.url, a.content_type, a.filename)
    if data.message_id is None:
        raise WebhookRejected(
            422, "missing_provider_message_id", "`message_id` is required for idempotency"
        )
    if not data.text and not data.attachments:
        raise WebhookRejected(422, "empty_message", "a message needs `text` or `attachments`")
    _check_sent_at(data.sent_at)
    return InboundMessage(
        provider_message_id=data.message_id,
        sender=Sender(channel="api", address=data.contact.identifier, name=data.contact.name),
        content=data.text,
        content_type="text",
        attachments=tuple(
            Attachment(url=a.url, content_type=a.content_type, filename=a.filename, size=a.size)
            for a in data.attachments
        ),
        sent_at=data.sent_at,
    )


def parse_statuses(body: bytes) -> list[StatusUpdate]:
    data: ApiStatusesIn = decode_json(_status_decoder, body)
    updates = []
    for item in data.statuses:
        no_nul(item.message_id, item.status, item.error_code, item.error_message)
        status = MANIFEST.status_for(item.status)
        if status is None:
            raise WebhookRejected(
                422,
                "unknown_status",
                f"status must be one of {', '.join(sorted(MANIFEST.statuses))}",
            )
        updates.append(
            StatusUpdate(
                provider_message_id=item.message_id,
                status=status,
                provider_status=item.status,
                error_code=item.error_code,
                error_message=item.error_message,
            )
        )
    return updates


def _is_status_report(body: bytes) -> bool:
    """Cheap first look (the message path is the hot one): a status report's only key."""
    return body.lstrip()[:1] == b"{" and body.lstrip()[1:].lstrip().startswith(b'"statuses"')


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return float(headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _clean(text: str | None) -> str:
    """What the customer's system answered, storable (PostgreSQL text holds no NUL)."""
    return (text or "").replace("\x00", "")


def _absolute(attachment: Mapping[str, Any], base: str) -> dict[str, Any]:
    """The hub's own media URLs are relative; the customer's system gets them absolute."""
    url = str(attachment.get("url") or "")
    return {**attachment, "url": base + url if url.startswith("/") else url}


class ApiChannel(BaseAdapter):
    manifest = MANIFEST

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        url = settings.get("outbound_url")
        if url is not None and (
            not isinstance(url, str) or not url.startswith(("https://", "http://"))
        ):
            raise SettingsInvalid("outbound_url must be an http(s) URL", "outbound_url")

    async def parse_webhook(self, request: WebhookRequest, inbox: InboxContext) -> WebhookResult:
        secret = inbox.secrets.get("signing_secret")
        if not verify_hmac_sha256(secret, request.body, request.headers.get(SIGNATURE_HEADER)):
            raise WebhookRejected(
                403, "invalid_signature", f"missing or wrong {SIGNATURE_HEADER} signature"
            )
        if request.content_type != "application/json":
            raise WebhookRejected(
                415, "unsupported_media_type", "send the body as application/json"
            )
        if _is_status_report(request.body):
            return WebhookResult(statuses=parse_statuses(request.body))
        return WebhookResult(messages=[parse_body(request.body)])

    def delivers(self, inbox: InboxContext) -> bool:
        return isinstance(inbox.settings.get("outbound_url"), str)

    async def send(self, inbox: InboxContext, message: OutboundMessage) -> SendResult:
        url = inbox.settings.get("outbound_url")
        secret = inbox.secrets.get("signing_secret")
        if not isinstance(url, str) or not secret:
            raise SendError("not_configured", "the inbox has no outbound_url", retryable=False)
        base = (self.env.public_url or "").rstrip("/")
        body = orjson.dumps(
            {
                "message_id": message.message_id,
                "conversation_id": message.conversation_id,
                "contact": {"identifier": message.to},
                "text": message.content,
                "attachments": [_absolute(a, base) for a in message.attachments],
            }
        )
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_hmac_sha256(secret, body),
        }
        try:
            async with self.env.http.post(
                url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=15),
                allow_redirects=False,  # a redirect is an answer, never followed elsewhere
            ) as response:
                answer = await response.read()
                status = response.status
                retry_after = _retry_after(response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SendError("network_error", repr(exc), retryable=True) from exc
        if 200 <= status < 300:
            try:
                sent = msgspec.json.decode(answer or b"{}", type=_Sent)
            except (msgspec.DecodeError, msgspec.ValidationError):
                sent = _Sent()
            return SendResult(_clean(sent.message_id) or message.message_id)
        try:
            refusal = msgspec.json.decode(answer, type=_Refusal).error or _ErrorBody()
        except (msgspec.DecodeError, msgspec.ValidationError):
            refusal = _ErrorBody()
        code = _clean(str(refusal.code)) if refusal.code is not None else ""
        retryable = status == 429 or status >= 500
        raise SendError(
            code or f"http_{status}",
            _clean(refusal.message) or f"the outbound endpoint answered {status}",
            retryable=retryable,
            retry_after=retry_after if retryable else None,
        )
