"""WhatsApp Cloud API webhooks: the GET verification handshake and the signed POST deliveries.

GET ``?hub.mode=subscribe&hub.verify_token=...&hub.challenge=...`` is how Meta checks a callback
URL: the token is compared in constant time with the inbox's ``verify_token`` and the challenge is
answered as ``text/plain``; a wrong or missing token is a 403.

POST deliveries are signed with ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``
under the Meta app's secret. The signature is checked before the body is parsed, and an inbox
without an ``app_secret`` refuses everything.

One delivery may carry several entries (business accounts), each with several changes, each with
several messages and statuses: all of them are taken. Only changes of the ``messages`` field for
the inbox's own number (``metadata.phone_number_id`` equal to the inbox's ``phone_number_id``)
are; the rest are skipped and the delivery is still answered 200. A Meta app has one callback URL
for all its numbers unless a number or business account overrides it, so a delivery can hold
another number's traffic: storing it here would thread its customers into the wrong inbox and
answer them from the wrong number, and refusing it would only make Meta retry it forever. Give each
number its own inbox URL (the per-number ``webhook_configuration`` override) to receive it.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

import msgspec

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
    verify_hmac_sha256,
)
from channels._base.bodies import decode_json, no_nul
from channels.whatsapp_cloud.manifest import MANIFEST
from hub.phone import PHONE, to_e164

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
OBJECT = "whatsapp_business_account"
#: media ids go into Graph URL paths: nothing but these characters
MEDIA_ID = re.compile(r"[0-9A-Za-z_.-]{1,128}")
#: Meta's challenge is a number; nothing else is echoed back
CHALLENGE = re.compile(r"[0-9A-Za-z_.~-]{1,256}")
MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Short = Annotated[str, msgspec.Meta(max_length=1024)]
Long = Annotated[str, msgspec.Meta(max_length=65_536)]


class _Profile(msgspec.Struct):
    name: Short | None = None


class _Contact(msgspec.Struct):
    wa_id: Short | None = None
    profile: _Profile | None = None


class _Text(msgspec.Struct):
    body: Long


class _Media(msgspec.Struct):
    id: Id
    mime_type: Short | None = None
    sha256: Short | None = None
    caption: Long | None = None
    filename: Short | None = None


class _Location(msgspec.Struct):
    latitude: float
    longitude: float
    name: Short | None = None
    address: Short | None = None


class _CardName(msgspec.Struct):
    formatted_name: Short | None = None
    first_name: Short | None = None
    last_name: Short | None = None


class _CardPhone(msgspec.Struct):
    phone: Short | None = None
    wa_id: Short | None = None
    type: Short | None = None


class _CardEmail(msgspec.Struct):
    email: Short | None = None
    type: Short | None = None


class _CardOrg(msgspec.Struct):
    company: Short | None = None


class _Card(msgspec.Struct):
    name: _CardName | None = None
    phones: list[_CardPhone] = []
    emails: list[_CardEmail] = []
    org: _CardOrg | None = None


class _Choice(msgspec.Struct):
    id: Short | None = None
    title: Short | None = None
    description: Short | None = None


class _Flow(msgspec.Struct):
    name: Short | None = None
    body: Long | None = None


class _Interactive(msgspec.Struct):
    type: Short
    button_reply: _Choice | None = None
    list_reply: _Choice | None = None
    nfm_reply: _Flow | None = None


class _Button(msgspec.Struct):
    text: Short | None = None
    payload: Short | None = None


class _Reaction(msgspec.Struct):
    message_id: Id | None = None
    emoji: Short | None = None


class _Context(msgspec.Struct):
    id: Id | None = None


class _System(msgspec.Struct):
    body: Long | None = None


class _ErrorData(msgspec.Struct):
    details: Long | None = None


class _Error(msgspec.Struct):
    code: int | None = None
    title: Short | None = None
    message: Long | None = None
    error_data: _ErrorData | None = None


class _Message(msgspec.Struct):
    sender: Short = msgspec.field(name="from")
    id: Id
    timestamp: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,12}$")]
    type: Short
    text: _Text | None = None
    image: _Media | None = None
    audio: _Media | None = None
    video: _Media | None = None
    document: _Media | None = None
    sticker: _Media | None = None
    location: _Location | None = None
    contacts: list[_Card] | None = None
    interactive: _Interactive | None = None
    button: _Button | None = None
    reaction: _Reaction | None = None
    context: _Context | None = None
    system: _System | None = None
    errors: list[_Error] = []


class _Status(msgspec.Struct):
    id: Id
    status: Short
    timestamp: Short | None = None
    recipient_id: Short | None = None
    errors: list[_Error] = []


class _Metadata(msgspec.Struct):
    phone_number_id: Id
    display_phone_number: Short | None = None


class _Value(msgspec.Struct):
    metadata: _Metadata
    messaging_product: Short | None = None
    contacts: list[_Contact] = []
    messages: list[_Message] = []
    statuses: list[_Status] = []
    errors: list[_Error] = []


class _Change(msgspec.Struct):
    field: Short
    value: msgspec.Raw


class _Entry(msgspec.Struct):
    id: Short
    changes: list[_Change]


class _Delivery(msgspec.Struct):
    object: Short
    entry: Annotated[list[_Entry], msgspec.Meta(min_length=1)]


_delivery = msgspec.json.Decoder(_Delivery)
_value = msgspec.json.Decoder(_Value)


# -- the GET handshake ---------------------------------------------------------------------------


def verify_subscription(request: WebhookRequest, inbox: InboxContext) -> WebhookResult:
    query = urlsplit(request.path_qs).query
    try:
        params = dict(parse_qsl(query, keep_blank_values=True, max_num_fields=20, errors="strict"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookRejected(400, "invalid_query", f"the query cannot be read: {exc}") from exc
    mode = params.get("hub.mode")
    token = params.get("hub.verify_token")
    challenge = params.get("hub.challenge")
    if mode is None and token is None and challenge is None:
        raise WebhookRejected(
            400,
            "missing_field",
            "a verification request has hub.mode, hub.verify_token and hub.challenge",
        )
    if mode != "subscribe":
        raise WebhookRejected(400, "invalid_mode", "hub.mode must be subscribe")
    secret = inbox.secrets.get("verify_token")
    if (
        not secret
        or not token
        or not hmac.compare_digest(str(token).encode(), str(secret).encode())
    ):
        raise WebhookRejected(403, "invalid_verify_token", "hub.verify_token is wrong")
    if challenge is None or not CHALLENGE.fullmatch(challenge):
        raise WebhookRejected(400, "invalid_challenge", "hub.challenge is missing or malformed")
    return WebhookResult(reply=DirectReply(challenge.encode(), content_type="text/plain"))


# -- POST deliveries -----------------------------------------------------------------------------


def verify_signature(request: WebhookRequest, inbox: InboxContext) -> None:
    secret = inbox.secrets.get("app_secret")
    if not verify_hmac_sha256(secret, request.body, request.headers.get(SIGNATURE_HEADER)):
        raise WebhookRejected(
            403, "invalid_signature", f"missing or wrong {SIGNATURE_HEADER} signature"
        )


def _sent_at(timestamp: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(timestamp), UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise WebhookRejected(422, "invalid_body", "timestamp is not a time") from exc


def _address(raw: str) -> str:
    digits = raw.removeprefix("+")
    e164 = to_e164("+" + digits) if digits.isdigit() else None
    if e164 is None:
        raise WebhookRejected(422, "invalid_sender", "from is not a WhatsApp number")
    return e164


def _error_text(errors: Sequence[_Error]) -> tuple[str | None, str | None]:
    """The first error's code and its most helpful text (Meta puts the detail in error_data)."""
    if not errors:
        return None, None
    first = errors[0]
    code = str(first.code) if first.code is not None else None
    details = first.error_data.details if first.error_data is not None else None
    return code, details or first.message or first.title


def _card(card: _Card) -> str:
    """A shared contact card on one line: name, then numbers, addresses and company."""
    title = ""
    if card.name is not None:
        parts = (card.name.first_name, card.name.last_name)
        title = card.name.formatted_name or " ".join(p for p in parts if p)
    details = [
        (p.phone or p.wa_id or "") + (f" ({p.type})" if p.type else "")
        for p in card.phones
        if p.phone or p.wa_id
    ]
    details += [e.email for e in card.emails if e.email]
    if card.org is not None and card.org.company:
        details.append(card.org.company)
    return (title or "Contact") + (": " + ", ".join(details) if details else "")


def _unsupported(message: _Message) -> str:
    _, detail = _error_text(message.errors)
    shown = f"Unsupported WhatsApp message (type {message.type})"
    return f"{shown}: {detail}" if detail else shown


def _missing(kind: str) -> WebhookRejected:
    return WebhookRejected(422, "invalid_body", f"a {kind} message has no {kind} object")


def _message(message: _Message, names: dict[str, str]) -> InboundMessage:
    """One Cloud API message as the hub's: what it says, and the files still to fetch."""
    kind = message.type
    content: str | None = None
    content_type = "text"
    media: tuple[MediaRef, ...] = ()
    reply_to = message.context.id if message.context is not None else None
    if kind == "text":
        if message.text is None:
            raise _missing(kind)
        content = message.text.body
    elif kind in MEDIA_TYPES:
        file: _Media | None = getattr(message, kind)
        if file is None:
            raise _missing(kind)
        if not MEDIA_ID.fullmatch(file.id):
            raise WebhookRejected(422, "invalid_body", "a media id holds unexpected characters")
        content = file.caption or None
        media = (MediaRef(file.id, file.mime_type, file.filename),)
    elif kind == "location":
        if message.location is None:
            raise _missing(kind)
        place = message.location
        lines = [f"{place.latitude},{place.longitude}", place.name or "", place.address or ""]
        content, content_type = "\n".join(line for line in lines if line), "location"
    elif kind == "contacts":
        if not message.contacts:
            raise _missing(kind)
        content, content_type = "\n".join(_card(c) for c in message.contacts), "contacts"
    elif kind == "interactive":
        if message.interactive is None:
            raise _missing(kind)
        chosen = message.interactive.button_reply or message.interactive.list_reply
        flow = message.interactive.nfm_reply
        if chosen is not None:
            content = chosen.title or chosen.id
        elif flow is not None:
            content = flow.body or flow.name or "Form submitted"
        else:
            content = f"Interactive reply ({message.interactive.type})"
        content_type = "interactive"
    elif kind == "button":  # a quick-reply button of a template
        if message.button is None:
            raise _missing(kind)
        content, content_type = message.button.text or message.button.payload, "interactive"
    elif kind == "reaction":
        if message.reaction is None:
            raise _missing(kind)
        content, content_type = message.reaction.emoji or "Reaction removed", "reaction"
        reply_to = message.reaction.message_id
    elif kind == "system" and message.system is not None:
        content, content_type = message.system.body or "System message", "system"
    else:  # "unsupported", and types this hub does not know (orders, new kinds)
        content, content_type = _unsupported(message), "unsupported"
    address = _address(message.sender)
    name = names.get(message.sender.removeprefix("+"))
    no_nul(message.id, content, name, reply_to)
    for ref in media:
        no_nul(ref.content_type, ref.filename)
    return InboundMessage(
        provider_message_id=message.id,
        sender=Sender(channel=PHONE, address=address, name=name),
        content=content,
        content_type=content_type,
        sent_at=_sent_at(message.timestamp),
        media=media,
        reply_to=reply_to,
    )


def _status(item: _Status, inbox: InboxContext) -> StatusUpdate | None:
    """``None`` for a status Meta does not document (yet): it is logged and skipped. Refusing it
    would refuse the whole delivery, and the messages in it, which Meta would then retry until it
    gives up — losing them."""
    status = MANIFEST.status_for(item.status)
    if status is None:
        log.warning(
            "WhatsApp status not known to the hub skipped",
            extra={"inbox_id": inbox.id, "status": item.status[:40]},
        )
        return None
    code, text = _error_text(item.errors)
    no_nul(item.id, code, text)
    return StatusUpdate(item.id, status, item.status.lower(), code, text)


def parse_delivery(body: bytes, inbox: InboxContext) -> WebhookResult:
    delivery: _Delivery = decode_json(_delivery, body, "body")
    if delivery.object != OBJECT:
        raise WebhookRejected(422, "unsupported_object", f"object must be {OBJECT}")
    number = str(inbox.settings.get("phone_number_id") or "")
    messages: list[InboundMessage] = []
    statuses: list[StatusUpdate] = []
    for e, entry in enumerate(delivery.entry):
        for c, change in enumerate(entry.changes):
            if change.field != "messages":
                continue  # template reviews, account and quality updates: not for the inbox
            value: _Value = decode_json(_value, change.value, f"entry[{e}].changes[{c}].value")
            if value.metadata.phone_number_id != number:
                log.info(
                    "WhatsApp change for another number skipped",
                    extra={"inbox_id": inbox.id, "phone_number_id": value.metadata.phone_number_id},
                )
                continue
            if value.errors:
                code, text = _error_text(value.errors)
                log.warning(
                    "WhatsApp reported an error",
                    extra={"inbox_id": inbox.id, "code": code, "reason": text},
                )
            names = {
                contact.wa_id: contact.profile.name
                for contact in value.contacts
                if contact.wa_id and contact.profile is not None and contact.profile.name
            }
            messages += [_message(m, names) for m in value.messages]
            statuses += [u for s in value.statuses if (u := _status(s, inbox)) is not None]
    return WebhookResult(messages=messages, statuses=statuses)


def parse(request: WebhookRequest, inbox: InboxContext) -> WebhookResult:
    if request.method == "GET":
        return verify_subscription(request, inbox)
    if request.method != "POST":
        raise WebhookRejected(405, "method_not_allowed", "WhatsApp webhooks are GET or POST")
    verify_signature(request, inbox)
    if request.content_type != "application/json":
        raise WebhookRejected(415, "unsupported_media_type", "send the body as application/json")
    return parse_delivery(request.body, inbox)
