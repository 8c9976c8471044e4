"""Messenger Platform webhooks, as Facebook Messenger and Instagram Direct send them.

GET ``?hub.mode=subscribe&hub.verify_token=...&hub.challenge=...`` is Meta's check of the callback
URL (the WhatsApp channel's handshake, shared). POST deliveries are signed with
``X-Hub-Signature-256`` (HMAC-SHA256 of the raw body under the app secret), checked before the
body is read; an inbox without an ``app_secret`` refuses everything.

A delivery has entries (one per page or Instagram account) with ``messaging`` (and, for an app
that is not the primary receiver, ``standby``) events; every event of every entry for the inbox's
account is taken. A delivery with no entry for it is refused (422 ``unknown_account``): it was sent
to the wrong inbox's URL. Entries for other accounts beside the inbox's are skipped and logged
(one Meta app has one callback URL for all its pages).

What each event becomes:

- a customer's ``message``: a message (text, files fetched before it is stored, a quick reply's
  payload, a story reply or mention on Instagram); ``is_deleted`` (an unsend) becomes a short
  entry on the timeline that points at the original;
- ``message_edit``: the stored message takes the new text, marked edited, the earlier text kept
  (a :class:`MessageEdit`);
- ``postback`` (a button tapped) and ``reaction``: messages of their own kind;
- an echo (``is_echo``) of a message the hub sent (its ``metadata`` is ``hub:<id>``, or the
  inbox's ``app_id`` sent it): a ``sent`` report; an echo of a message sent elsewhere: stored as
  outgoing, never as the customer's;
- ``delivery`` (``mids``, ``watermark``) and ``read`` (``watermark``; Instagram: ``mid``): status
  reports, watermarks for every message sent up to then;
- anything else (opt-ins, referrals, hand-over): logged and skipped.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlsplit

import msgspec

from channels._base import (
    InboundMessage,
    InboxContext,
    MediaRef,
    MessageEdit,
    Sender,
    StatusUpdate,
    Watermark,
    WebhookRejected,
    WebhookRequest,
    WebhookResult,
    verify_hmac_sha256,
)
from channels._base.bodies import decode_json, no_nul
from channels._meta.flavour import METADATA_PREFIX, Flavour
from channels.whatsapp_cloud.inbound import verify_subscription
from hub.events import MessageStatus

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
UserId = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,32}$")]
Short = Annotated[str, msgspec.Meta(max_length=1024)]
Long = Annotated[str, msgspec.Meta(max_length=65_536)]
Url = Annotated[str, msgspec.Meta(max_length=4096)]
Millis = Annotated[int, msgspec.Meta(ge=0, le=253_402_300_799_000)]
#: the file kinds of the platform's attachments, and the type assumed until the download says
FILE_KINDS = {"image": "image/jpeg", "video": "video/mp4", "audio": "audio/mpeg", "file": None}


class _Party(msgspec.Struct):
    id: UserId


class _Coordinates(msgspec.Struct):
    lat: float
    long: float


class _Payload(msgspec.Struct):
    url: Url | None = None
    title: Short | None = None
    sticker_id: int | None = None
    coordinates: _Coordinates | None = None


class _Attachment(msgspec.Struct):
    type: Short
    payload: _Payload | None = None
    title: Short | None = None


class _QuickReply(msgspec.Struct):
    payload: Long


class _Story(msgspec.Struct):
    url: Url | None = None
    id: Short | None = None


class _ReplyTo(msgspec.Struct):
    mid: Id | None = None
    story: _Story | None = None


class _Message(msgspec.Struct):
    mid: Id
    text: Long | None = None
    attachments: list[_Attachment] = []
    quick_reply: _QuickReply | None = None
    reply_to: _ReplyTo | None = None
    is_echo: bool = False
    app_id: int | str | None = None
    metadata: Short | None = None
    is_deleted: bool = False
    is_unsupported: bool = False


class _Postback(msgspec.Struct):
    title: Short | None = None
    payload: Long | None = None
    mid: Id | None = None


class _Reaction(msgspec.Struct):
    mid: Id
    action: Short = "react"
    emoji: Short | None = None
    reaction: Short | None = None


class _Delivery(msgspec.Struct):
    mids: list[Id] = []
    watermark: Millis | None = None


class _Read(msgspec.Struct):
    watermark: Millis | None = None
    mid: Id | None = None


class _Edit(msgspec.Struct):
    mid: Id
    text: Long | None = None
    num_edit: int | str | None = None


class _Event(msgspec.Struct):
    sender: _Party
    recipient: _Party
    timestamp: Millis | None = None
    message: _Message | None = None
    postback: _Postback | None = None
    reaction: _Reaction | None = None
    delivery: _Delivery | None = None
    read: _Read | None = None
    message_edit: _Edit | None = None


class _Entry(msgspec.Struct):
    id: Short
    time: Millis | None = None
    messaging: list[msgspec.Raw] = []
    standby: list[msgspec.Raw] = []


class _Body(msgspec.Struct):
    object: Short
    entry: Annotated[list[_Entry], msgspec.Meta(min_length=1)]


_body = msgspec.json.Decoder(_Body)
_event = msgspec.json.Decoder(_Event)


def _time(millis: int | None) -> datetime | None:
    if millis is None:
        return None
    try:
        return datetime.fromtimestamp(millis / 1000, UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise WebhookRejected(422, "invalid_body", "timestamp is not a time") from exc


def _url(raw: str | None) -> str | None:
    """A file URL the platform gave: http(s) with a host, else not taken."""
    if not raw:
        return None
    parts = urlsplit(raw)
    return raw if parts.scheme in ("http", "https") and parts.hostname else None


class Parser:
    """One delivery, read for one inbox."""

    def __init__(self, flavour: Flavour, inbox: InboxContext) -> None:
        self.flavour = flavour
        self.inbox = inbox
        self.identity = flavour.manifest.identity_channel
        self.messages: list[InboundMessage] = []
        self.echoes: list[InboundMessage] = []
        self.statuses: list[StatusUpdate] = []
        self.watermarks: list[Watermark] = []
        self.edits: list[MessageEdit] = []
        app_id = inbox.settings.get("app_id")
        self.app_id = str(app_id) if app_id else None

    # -- messages --------------------------------------------------------------------------------

    def _files(self, attachments: Sequence[_Attachment]) -> tuple[list[str], list[MediaRef]]:
        """Lines to show and files to fetch for a message's attachments."""
        lines: list[str] = []
        media: list[MediaRef] = []
        for a in attachments:
            payload = a.payload or _Payload()
            url = _url(payload.url)
            if a.type in FILE_KINDS or a.type in ("story_mention", "ig_reel", "reel", "share"):
                if a.type == "story_mention":
                    lines.append(f"Mentioned you in their {self.flavour.label} story")
                elif a.type not in FILE_KINDS:
                    lines.append(payload.title or a.title or f"Shared a {a.type.replace('_', ' ')}")
                if url is not None:
                    kind = FILE_KINDS.get(a.type)
                    guessed = mimetypes.guess_type(urlsplit(url).path)[0]
                    media.append(MediaRef(url, guessed or kind))
                elif a.type in FILE_KINDS:
                    lines.append(f"A {a.type} that could not be received")
            elif a.type == "location" and payload.coordinates is not None:
                c = payload.coordinates
                lines.append(f"{c.lat},{c.long}" + (f"\n{payload.title}" if payload.title else ""))
            else:  # fallback (a shared link), template, and kinds this hub does not know
                shown = payload.title or a.title or f"Unsupported attachment ({a.type})"
                lines.append(shown + (f"\n{url}" if url else ""))
        return lines, media

    def _message(self, event: _Event, message: _Message, at: datetime | None) -> None:
        customer = event.sender.id
        if message.is_echo:
            self._echo(event, message, at)
            return
        reply_to = message.reply_to.mid if message.reply_to is not None else None
        if message.is_deleted:
            self._add(
                f"{message.mid}#unsent",
                customer,
                "Unsent a message",
                "unsent",
                at,
                reply_to=message.mid,
            )
            return
        lines, media = self._files(message.attachments)
        content_type = "text"
        if message.quick_reply is not None:
            content_type = "quick_reply"
        story = message.reply_to.story if message.reply_to is not None else None
        if story is not None:
            content_type = "story_reply"
            lines.insert(0, f"Replied to your {self.flavour.label} story")
            story_url = _url(story.url)
            if story_url is not None:
                media.insert(0, MediaRef(story_url, mimetypes.guess_type(story.url or "")[0]))
        if any(a.type == "story_mention" for a in message.attachments):
            content_type = "story_mention"
        if message.text:
            lines.append(message.text)
        if message.quick_reply is not None and message.quick_reply.payload != message.text:
            lines.append(f"payload: {message.quick_reply.payload}")
        if message.is_unsupported and not lines and not media:
            lines.append(f"A message {self.flavour.label} does not show to apps")
            content_type = "unsupported"
        self._add(
            message.mid,
            customer,
            "\n".join(lines) or None,
            content_type,
            at,
            media=media,
            reply_to=reply_to,
        )

    def _echo(self, event: _Event, message: _Message, at: datetime | None) -> None:
        """The business's own message: the hub's (a ``sent`` report) or from elsewhere."""
        ours = (message.metadata or "").startswith(METADATA_PREFIX) or (
            self.app_id is not None and str(message.app_id) == self.app_id
        )
        if ours:
            self.statuses.append(StatusUpdate(message.mid, MessageStatus.SENT, "echo"))
            return
        lines, media = self._files(message.attachments)
        if message.text:
            lines.append(message.text)
        no_nul(message.mid, *lines)
        self.echoes.append(
            InboundMessage(
                provider_message_id=message.mid,
                sender=Sender(self.identity, event.recipient.id),
                content="\n".join(lines) or None,
                sent_at=at,
                media=tuple(media),
            )
        )

    def _add(
        self,
        pmid: str,
        customer: str,
        content: str | None,
        content_type: str,
        at: datetime | None,
        *,
        media: Sequence[MediaRef] = (),
        reply_to: str | None = None,
    ) -> None:
        no_nul(pmid, content, reply_to, *(m.ref for m in media))
        self.messages.append(
            InboundMessage(
                provider_message_id=pmid,
                sender=Sender(self.identity, customer),
                content=content,
                content_type=content_type,
                sent_at=at,
                media=tuple(media),
                reply_to=reply_to,
            )
        )

    # -- one event -------------------------------------------------------------------------------

    def event(self, raw: msgspec.Raw, where: str) -> None:
        event: _Event = decode_json(_event, raw, where)
        at = _time(event.timestamp)
        customer = event.sender.id
        if event.message is not None:
            self._message(event, event.message, at)
        elif event.postback is not None:
            p = event.postback
            pmid = p.mid or f"postback:{customer}:{event.timestamp}"
            lines = [p.title or "Tapped a button"]
            if p.payload and p.payload != p.title:
                lines.append(f"payload: {p.payload}")
            self._add(pmid, customer, "\n".join(lines), "postback", at)
        elif event.reaction is not None:
            r = event.reaction
            removed = r.action == "unreact"
            shown = "Reaction removed" if removed else (r.emoji or r.reaction or "Reacted")
            pmid = f"{r.mid}#reaction:{customer}:{event.timestamp}"
            self._add(pmid, customer, shown, "reaction", at, reply_to=r.mid)
        elif event.message_edit is not None:
            e = event.message_edit
            no_nul(e.mid, e.text)
            nth = e.num_edit if e.num_edit is not None else event.timestamp
            self.edits.append(
                MessageEdit(
                    provider_message_id=e.mid,
                    edit_id=f"{e.mid}#edit:{nth}",
                    sender=Sender(self.identity, customer),
                    content=e.text,
                    edited_at=at,
                )
            )
        elif event.delivery is not None:
            d = event.delivery
            no_nul(*d.mids)
            self.statuses += [StatusUpdate(m, MessageStatus.DELIVERED, "delivery") for m in d.mids]
            mark = _time(d.watermark)
            if mark is not None:
                self.watermarks.append(
                    Watermark(customer, mark, MessageStatus.DELIVERED, "delivery")
                )
        elif event.read is not None:
            rd = event.read
            if rd.mid is not None:
                no_nul(rd.mid)
                self.statuses.append(StatusUpdate(rd.mid, MessageStatus.READ, "read"))
            mark = _time(rd.watermark)
            if mark is not None:
                self.watermarks.append(Watermark(customer, mark, MessageStatus.READ, "read"))
        else:
            log.info("%s event not taken", self.flavour.label, extra={"inbox_id": self.inbox.id})

    def result(self) -> WebhookResult:
        return WebhookResult(
            messages=self.messages,
            statuses=self.statuses,
            echoes=self.echoes,
            watermarks=self.watermarks,
            edits=self.edits,
        )


def verify_signature(request: WebhookRequest, inbox: InboxContext) -> None:
    secret = inbox.secrets.get("app_secret")
    if not verify_hmac_sha256(secret, request.body, request.headers.get(SIGNATURE_HEADER)):
        raise WebhookRejected(
            403, "invalid_signature", f"missing or wrong {SIGNATURE_HEADER} signature"
        )


def parse_delivery(flavour: Flavour, body: bytes, inbox: InboxContext) -> WebhookResult:
    delivery: _Body = decode_json(_body, body, "body")
    if delivery.object != flavour.object:
        raise WebhookRejected(422, "unsupported_object", f"object must be {flavour.object}")
    account = flavour.account_id(inbox.settings)
    parser = Parser(flavour, inbox)
    taken = 0
    for e, entry in enumerate(delivery.entry):
        if account is None or entry.id != account:
            log.info(
                "%s entry for another account skipped",
                flavour.label,
                extra={"inbox_id": inbox.id, "account": entry.id[:40]},
            )
            continue
        taken += 1
        for n, raw in enumerate(entry.messaging):
            parser.event(raw, f"entry[{e}].messaging[{n}]")
        for n, raw in enumerate(entry.standby):
            parser.event(raw, f"entry[{e}].standby[{n}]")
    if not taken:
        raise WebhookRejected(
            422,
            "unknown_account",
            f"no entry of this delivery is for the inbox's {flavour.account_setting}",
        )
    return parser.result()


def parse(flavour: Flavour, request: WebhookRequest, inbox: InboxContext) -> WebhookResult:
    if request.method == "GET":
        return verify_subscription(request, inbox)
    if request.method != "POST":
        raise WebhookRejected(405, "method_not_allowed", "Meta webhooks are GET or POST")
    verify_signature(request, inbox)
    if request.content_type != "application/json":
        raise WebhookRejected(415, "unsupported_media_type", "send the body as application/json")
    return parse_delivery(flavour, request.body, inbox)
