"""Telegram Bot API updates POSTed to the hub's webhook.

Telegram does not sign updates: it sends the ``secret_token`` the hub gave ``setWebhook`` in
``X-Telegram-Bot-Api-Secret-Token``, compared here in constant time before the body is read. An
inbox without a ``webhook_secret`` refuses everything.

Taken: ``message`` and ``edited_message`` in private chats (the customer's own chat with the
bot). What a message becomes: its text (or caption); the largest size of a photo, a document,
voice note, video, video note, audio or sticker as a file fetched before the message is stored
(``getFile`` then the file URL); a location; a shared contact card; a reply quotes the first
line of what it answers; ``/start <payload>`` (a deep link ``t.me/<bot>?start=<payload>``)
becomes a ``start`` message showing the payload, and the payload is kept on the conversation as
its ``start_payload`` attribute (the newest deep link wins). An edit (``edited_message``)
changes the stored message: its new text shown, marked edited, the earlier text kept
(:class:`MessageEdit`); its files are not fetched again.
Other updates (group messages, channel posts, button callbacks, membership changes) are
answered 200 and skipped, or Telegram would retry them.
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime
from typing import Annotated

import msgspec

from channels._base import (
    InboundMessage,
    InboxContext,
    MediaRef,
    MessageEdit,
    Sender,
    WebhookRejected,
    WebhookRequest,
    WebhookResult,
)
from channels._base.bodies import decode_json, no_nul
from hub.identities import TELEGRAM

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
Short = Annotated[str, msgspec.Meta(max_length=1024)]
Long = Annotated[str, msgspec.Meta(max_length=65_536)]
FileId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,256}$")]
ChatId = Annotated[int, msgspec.Meta(ge=-(2**53), le=2**53)]
Positive = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
#: a quoted reply shows this much of what it answers
QUOTE = 200


class _User(msgspec.Struct):
    id: Positive
    is_bot: bool = False
    first_name: Short | None = None
    last_name: Short | None = None
    username: Short | None = None


class _Chat(msgspec.Struct):
    id: ChatId
    type: Short


class _File(msgspec.Struct):
    file_id: FileId
    file_size: Positive | None = None
    file_name: Short | None = None
    mime_type: Short | None = None
    emoji: Short | None = None


class _Location(msgspec.Struct):
    latitude: float
    longitude: float


class _Contact(msgspec.Struct):
    phone_number: Short
    first_name: Short | None = None
    last_name: Short | None = None


class _Quoted(msgspec.Struct):
    message_id: Positive
    text: Long | None = None
    caption: Long | None = None


class _Message(msgspec.Struct):
    message_id: Positive
    date: Positive
    chat: _Chat
    sender: _User | None = msgspec.field(default=None, name="from")
    text: Long | None = None
    caption: Long | None = None
    photo: list[_File] = []
    document: _File | None = None
    voice: _File | None = None
    audio: _File | None = None
    video: _File | None = None
    video_note: _File | None = None
    sticker: _File | None = None
    location: _Location | None = None
    contact: _Contact | None = None
    reply_to_message: _Quoted | None = None
    edit_date: Positive | None = None


class _Update(msgspec.Struct):
    update_id: Positive
    message: _Message | None = None
    edited_message: _Message | None = None


_update = msgspec.json.Decoder(_Update)
#: the files a message may carry, the type assumed when Telegram names none, and a name
_FILES = (
    ("document", None, None),
    ("voice", "audio/ogg", "voice.ogg"),
    ("audio", "audio/mpeg", None),
    ("video", "video/mp4", None),
    ("video_note", "video/mp4", "video-note.mp4"),
    ("sticker", "image/webp", "sticker.webp"),
)


def provider_id(chat_id: int, message_id: int) -> str:
    """A message id is unique within its chat only."""
    return f"{chat_id}:{message_id}"


def verify(request: WebhookRequest, inbox: InboxContext) -> None:
    secret = str(inbox.secrets.get("webhook_secret") or "")
    given = request.headers.get(SECRET_HEADER) or ""
    if not secret or not given or not hmac.compare_digest(given.encode(), secret.encode()):
        raise WebhookRejected(403, "invalid_secret_token", f"missing or wrong {SECRET_HEADER}")


def _name(user: _User) -> str | None:
    full = " ".join(p for p in (user.first_name, user.last_name) if p)
    return full or (f"@{user.username}" if user.username else None)


def _media(message: _Message) -> tuple[list[MediaRef], list[str]]:
    media: list[MediaRef] = []
    lines: list[str] = []
    if message.photo:  # the sizes of one photo: the largest is the photo
        largest = max(message.photo, key=lambda p: p.file_size or 0)
        media.append(MediaRef(largest.file_id, "image/jpeg", "photo.jpg"))
    for kind, default_type, default_name in _FILES:
        file: _File | None = getattr(message, kind)
        if file is None:
            continue
        if kind == "sticker" and file.emoji:
            lines.append(f"Sticker {file.emoji}")
        media.append(
            MediaRef(file.file_id, file.mime_type or default_type, file.file_name or default_name)
        )
    return media, lines


def start_payload(message: _Message) -> str | None:
    """The deep-link payload of a ``/start <payload>`` (``None``: not a start, or a bare one)."""
    if message.text is None or not message.text.startswith("/start "):
        return None
    return message.text.removeprefix("/start").strip() or None


def _content(message: _Message) -> tuple[str | None, str, list[MediaRef]]:
    media, lines = _media(message)
    content_type = "text"
    body = message.text if message.text is not None else message.caption
    if message.text is not None and (
        message.text == "/start" or message.text.startswith("/start ")
    ):
        payload = message.text.removeprefix("/start").strip()
        content_type = "start"
        body = f"Started the bot: {payload}" if payload else "Started the bot"
    if message.location is not None:
        place = message.location
        lines.append(f"{place.latitude},{place.longitude}")
        content_type = "location"
    if message.contact is not None:
        c = message.contact
        name = " ".join(p for p in (c.first_name, c.last_name) if p) or "Contact"
        lines.append(f"{name}: {c.phone_number}")
        content_type = "contacts"
    if body:
        lines.append(body)
    quoted = message.reply_to_message
    if quoted is not None:
        said = (quoted.text or quoted.caption or "a message").strip().splitlines()
        first = said[0] if said else "a message"
        quote = first if len(first) <= QUOTE else first[: QUOTE - 1] + "…"
        lines.insert(0, f"> {quote}")
    return "\n".join(lines) or None, content_type, media


def _private(message: _Message) -> _User | None:
    """The customer who wrote, for a message in their own chat with the bot."""
    if message.chat.type != "private" or message.sender is None or message.sender.is_bot:
        return None
    return message.sender


def _time(at: int) -> datetime:
    try:
        return datetime.fromtimestamp(at, UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise WebhookRejected(422, "invalid_body", "date is not a time") from exc


def _message(message: _Message, sender: _User) -> InboundMessage:
    content, content_type, media = _content(message)
    pmid = provider_id(message.chat.id, message.message_id)
    reply_to = (
        provider_id(message.chat.id, message.reply_to_message.message_id)
        if message.reply_to_message is not None
        else None
    )
    no_nul(content, *(m.filename for m in media), *(m.content_type for m in media))
    payload = start_payload(message)
    return InboundMessage(
        conversation_attributes={"start_payload": payload} if payload else {},
        provider_message_id=pmid,
        sender=Sender(TELEGRAM, str(sender.id), _name(sender)),
        content=content,
        content_type=content_type,
        sent_at=_time(message.date),
        media=tuple(media),
        reply_to=reply_to,
    )


def _edit(message: _Message, sender: _User) -> MessageEdit:
    content, _, _ = _content(message)
    no_nul(content)
    pmid = provider_id(message.chat.id, message.message_id)
    at = message.edit_date or message.date
    return MessageEdit(
        provider_message_id=pmid,
        edit_id=f"{pmid}:edit:{at}",
        sender=Sender(TELEGRAM, str(sender.id), _name(sender)),
        content=content,
        edited_at=_time(at),
    )


def parse(request: WebhookRequest, inbox: InboxContext) -> WebhookResult:
    if request.method != "POST":
        raise WebhookRejected(405, "method_not_allowed", "Telegram updates are POSTed")
    verify(request, inbox)
    if request.content_type != "application/json":
        raise WebhookRejected(415, "unsupported_media_type", "send the body as application/json")
    update: _Update = decode_json(_update, request.body, "update")
    found = update.message or update.edited_message
    if found is None:
        log.info("Telegram update not taken", extra={"inbox_id": inbox.id})
        return WebhookResult()
    sender = _private(found)
    if sender is None:
        log.info(
            "Telegram message outside a private chat skipped",
            extra={"inbox_id": inbox.id, "chat_type": found.chat.type[:40]},
        )
        return WebhookResult()
    if update.message is None:
        return WebhookResult(edits=[_edit(found, sender)])
    return WebhookResult(messages=[_message(found, sender)])
