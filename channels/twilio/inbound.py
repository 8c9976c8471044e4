"""Twilio's messaging webhooks: inbound messages and status callbacks (form-encoded, one URL).

Verified with the SDK's ``RequestValidator`` over the URL Twilio called (the configured public base
URL joined to the path and query) and every form parameter as sent, blank ones included: that is
what makes numbers inside a Messaging Service verify too, whose requests carry parameters
(``MessagingServiceSid``, empty ones) a parser that signs only the fields it knows would drop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from multidict import MultiDict
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from channels._base import (
    DirectReply,
    InboundMessage,
    InboxContext,
    MediaRef,
    Sender,
    StatusUpdate,
    WebhookRejected,
    WebhookRequest,
    WebhookResult,
)
from channels.twilio.manifest import ERROR_MESSAGES, MANIFEST
from hub.phone import PHONE, to_e164

#: Twilio reads the answer as TwiML; an empty one means "no automatic reply"
EMPTY_TWIML = DirectReply(
    b'<?xml version="1.0" encoding="UTF-8"?><Response/>', content_type="text/xml"
)
FORM = "application/x-www-form-urlencoded"
MAX_FIELDS = 200
MAX_MEDIA = 10  # Twilio's limit per message
WHATSAPP = "whatsapp:"


def parse_form(body: bytes) -> MultiDict[str]:
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookRejected(400, "invalid_form", f"the body is not a valid form: {exc}") from exc
    if "\x00" in text or any("\x00" in k or "\x00" in v for k, v in pairs):
        raise WebhookRejected(400, "invalid_form", "the form holds NUL characters")
    return MultiDict(pairs)


def verify(request: WebhookRequest, inbox: InboxContext, params: MultiDict[str]) -> None:
    """Fail closed: no secret, no header, or a wrong signature is a 403."""
    signature = request.headers.get(SIGNATURE_HEADER)
    settings_header = request.headers.get(SIGNATURE_SETTINGS_HEADER)
    # a SharedKey-signed webhook names its algorithm and is signed with that key's secret
    secret = inbox.secrets.get("webhook_signing_secret" if settings_header else "auth_token")
    if not signature or not secret or not request.url:
        raise WebhookRejected(403, "invalid_signature", f"missing or wrong {SIGNATURE_HEADER}")
    algorithm = get_signature_algorithm(settings_header)
    try:
        valid = RequestValidator(str(secret)).validate(request.url, params, signature, algorithm)
    except ValueError:  # a URL the validator cannot read (a Host header with a bad port)
        valid = False
    if not valid:
        raise WebhookRejected(403, "invalid_signature", f"missing or wrong {SIGNATURE_HEADER}")


def _one(params: MultiDict[str], *names: str, required: bool = True, limit: int = 1600) -> str:
    for name in names:
        values = params.getall(name, [])
        if len(values) > 1:
            raise WebhookRejected(422, "invalid_form", f"{name} was given more than once")
        if values and values[0] != "":
            if len(values[0]) > limit:
                raise WebhookRejected(422, "invalid_form", f"{name} is too long")
            return values[0]
    if required:
        raise WebhookRejected(422, "missing_field", f"{names[0]} is required")
    return ""


def _address(raw: str, inbox: InboxContext) -> str:
    number = raw[len(WHATSAPP) :] if raw.lower().startswith(WHATSAPP) else raw
    region = inbox.settings.get("default_region")
    e164 = to_e164(number, region if isinstance(region, str) else None)
    if e164 is None:
        raise WebhookRejected(422, "invalid_sender", "From is not a phone number")
    return e164


def is_status_callback(params: Mapping[str, Any]) -> bool:
    status = params.get("MessageStatus")
    return isinstance(status, str) and status.lower() not in ("received", "receiving")


def parse_status(params: MultiDict[str]) -> StatusUpdate:
    sid = _one(params, "MessageSid", "SmsSid", limit=64)
    raw = _one(params, "MessageStatus", limit=32)
    status = MANIFEST.status_for(raw)
    if status is None:
        raise WebhookRejected(422, "unknown_status", f"unknown MessageStatus {raw!r}")
    code = _one(params, "ErrorCode", required=False, limit=16) or None
    message = _one(params, "ErrorMessage", required=False, limit=1024) or None
    if code is not None and message is None:
        message = ERROR_MESSAGES.get(code, f"Twilio error {code}")
    return StatusUpdate(sid, status, raw.lower(), code, message)


def _media_count(params: MultiDict[str]) -> int:
    raw = _one(params, "NumMedia", required=False, limit=3) or "0"
    if not raw.isdigit() or int(raw) > MAX_MEDIA:
        raise WebhookRejected(422, "invalid_form", f"NumMedia must be 0 to {MAX_MEDIA}")
    return int(raw)


def parse_message(params: MultiDict[str], inbox: InboxContext) -> InboundMessage:
    sid = _one(params, "MessageSid", "SmsMessageSid", "SmsSid", limit=64)
    sender = _address(_one(params, "From", limit=64), inbox)
    name = _one(params, "ProfileName", required=False, limit=255) or None
    body = _one(params, "Body", required=False, limit=65_536)
    media = tuple(
        MediaRef(
            ref=_one(params, f"MediaUrl{n}", limit=2048),
            content_type=_one(params, f"MediaContentType{n}", required=False, limit=255) or None,
        )
        for n in range(_media_count(params))
    )
    for ref in media:
        if not ref.ref.startswith(("https://", "http://")):
            raise WebhookRejected(422, "invalid_form", "MediaUrl must be an http(s) URL")
    content_type = "text"
    latitude = _one(params, "Latitude", required=False, limit=32)
    longitude = _one(params, "Longitude", required=False, limit=32)
    if latitude and longitude and not body:  # a WhatsApp location pin
        content_type, body = "location", f"{latitude},{longitude}"
    return InboundMessage(
        provider_message_id=sid,
        sender=Sender(channel=PHONE, address=sender, name=name),
        content=body or None,
        content_type=content_type,
        media=media,
    )


def parse(request: WebhookRequest, inbox: InboxContext) -> WebhookResult:
    if request.method != "POST":
        raise WebhookRejected(405, "method_not_allowed", "Twilio webhooks are POST requests")
    if request.content_type != FORM:
        raise WebhookRejected(415, "unsupported_media_type", f"send the body as {FORM}")
    params = parse_form(request.body)
    verify(request, inbox, params)
    if is_status_callback(params):
        return WebhookResult(statuses=[parse_status(params)], reply=EMPTY_TWIML)
    return WebhookResult(messages=[parse_message(params, inbox)], reply=EMPTY_TWIML)
