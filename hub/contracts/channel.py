"""The channel contract: the canonical types every channel produces and consumes, and the adapter
protocol channels implement. The core owns these; ``channels/`` implements them.

A channel verifies and parses provider traffic at the edge; everything after it (ingest, bus,
consumers) only ever sees :class:`InboundMessage` and :class:`StatusUpdate`. Outbound, the delivery
consumer hands it an :class:`OutboundMessage` and records the :class:`SendResult` or
:class:`SendError` it gets back.

Two kinds of adapter instance exist: the shared ones in the channel registry
(:mod:`hub.contracts.registry`) parse webhooks and
fetch media (stateless: the HTTP session is passed in); the delivery side makes its own instances,
``start``-s them with a :class:`ChannelEnv` and ``stop``-s them at shutdown, so provider clients and
their connections belong to one hub process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import aiohttp

from hub.events import Attachment, MessageStatus
from hub.events.types import PROVIDER_PAYLOAD_MAX, ProviderPayload
from hub.media import MediaStore
from hub.store import values


class Capability(StrEnum):
    TEXT = "text"
    MEDIA = "media"
    TEMPLATES = "templates"
    TYPING = "typing"
    READ_RECEIPTS = "read_receipts"
    LOCATION = "location"
    VOICE = "voice"
    #: choices the customer taps, offered with a reply (``OutboundMessage.quick_replies``)
    QUICK_REPLIES = "quick_replies"


@dataclasses.dataclass(frozen=True)
class Manifest:
    id: str
    name: str
    capabilities: frozenset[str]
    #: secrets an inbox of this channel must have; a missing one makes every webhook a refusal
    required_secrets: tuple[str, ...]
    #: settings an inbox of this channel must have (``check_settings`` says what else is wrong)
    required_settings: tuple[str, ...] = ()
    #: settings and secrets an administrator may also give (the console's set-up form offers them)
    optional_settings: tuple[str, ...] = ()
    optional_secrets: tuple[str, ...] = ()
    #: secrets the hub makes when none is given, shown once in the reply to the create
    generated_secrets: tuple[str, ...] = ()
    #: the contact-identity channel senders are recorded under; SMS and WhatsApp share "phone"
    #: (E.164), so one person writing on both is one contact. Empty: the channel's id.
    identity: str = ""
    #: every delivery status the provider reports, each mapped to exactly one of ours
    statuses: Mapping[str, MessageStatus] = dataclasses.field(default_factory=dict)
    #: how long after the contact's last message free-form replies may be sent; after it only
    #: templates (WhatsApp's 24-hour customer-service window). ``None``: no such window.
    reply_window: timedelta | None = None
    #: the provider verifies the webhook URL with a GET (WhatsApp Cloud's ``hub.challenge``);
    #: for other channels a GET is 405
    get_handshake: bool = False
    #: the provider can say who a new sender is (``ChannelAdapter.sender_profile``)
    profiles: bool = False
    #: inboxes of the channel receive provider webhooks (the web chat's visitors use a socket)
    webhooks: bool = True

    @property
    def identity_channel(self) -> str:
        return self.identity or self.id

    def status_for(self, provider_status: str) -> MessageStatus | None:
        """Our status for a provider's, ``None`` if the provider status is not one it documents."""
        return self.statuses.get(provider_status.strip().lower())


@dataclasses.dataclass(frozen=True, slots=True)
class Sender:
    """Who wrote: an address on this channel (phone, email, handle, or a customer's own id)."""

    channel: str
    address: str
    name: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class MediaRef:
    """A file the provider holds (a URL or a media id): fetched with the inbox's credentials and
    stored before the message that carries it is ingested."""

    ref: str
    content_type: str | None = None
    filename: str | None = None
    #: the file itself when the provider's delivery carried it (an email's attachments, a
    #: multipart upload): stored as it is, without asking the adapter to fetch anything
    data: bytes | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True, slots=True)
class ThreadHint:
    """Which earlier conversation a message continues, for channels whose messages say so
    (email: In-Reply-To and References, then the subject).

    Ingest reads it only when the contact has no unresolved conversation in the inbox (there is
    at most one, and a new message always joins it): the conversation of the newest message in
    ``refs`` (provider message ids in this inbox, inbound or sent) is reopened; failing that, the
    conversation of the contact's newest message with the same ``key`` within ``key_within``;
    failing both, a new conversation starts, whatever the inbox's ``reopen_policy``. Only
    conversations of the same contact ever match, so two customers' threads never merge.
    """

    refs: tuple[str, ...] = ()
    #: a weaker thread key kept on the message (email: the subject without Re:/Fwd: prefixes)
    key: str | None = None
    key_within: timedelta = timedelta(days=30)


@dataclasses.dataclass(frozen=True, slots=True)
class StoredFile:
    """A file already in the media store (``hub.media``); ingest writes its ``media`` row in the
    message's transaction, so the file is served once the message exists."""

    key: str
    filename: str
    content_type: str
    size: int
    sha256: str

    @property
    def url(self) -> str:
        return f"/api/v1/media/{self.key}"


#: the conversation attribute holding the address a conversation's replies go to by mail (the
#: web chat's offline mode: the visitor left it while the inbox was closed); empty: not by mail
REPLY_BY_EMAIL = "reply_by_email"
#: the inbox setting naming the email inbox such replies are sent through
REPLY_EMAIL_INBOX = "reply_email_inbox_id"


@dataclasses.dataclass(frozen=True, slots=True)
class InboundMessage:
    provider_message_id: str
    sender: Sender
    content: str | None
    content_type: str = "text"
    #: files as the message shows them; an attachment with an empty ``url`` is one the provider
    #: announced but that could not be fetched for good (``unavailable``: too large, gone)
    attachments: tuple[Attachment, ...] = ()
    sent_at: datetime | None = None
    #: provider-held files still to fetch (the gateway does it before ingest)
    media: tuple[MediaRef, ...] = ()
    #: fetched files whose ``media`` rows ingest writes with the message
    files: tuple[StoredFile, ...] = ()
    #: the provider id of the message this one answers or reacts to (WhatsApp's ``context``)
    reply_to: str | None = None
    #: the earlier conversation this message continues, when the channel can tell
    thread: ThreadHint | None = None
    #: what the message says about its conversation, merged into the conversation's
    #: ``attributes`` when the message is stored (Telegram's ``/start`` deep-link payload as
    #: ``start_payload``); a redelivered message changes nothing
    conversation_attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: the webhook that carried it, as it arrived (the gateway sets it; the archive keeps it)
    provider_payload: ProviderPayload | None = None

    def __post_init__(self) -> None:
        """Every channel's message passes here: what the store would refuse is a 422 now."""
        try:
            _storable_message(self)
        except values.Unstorable as exc:
            raise WebhookRejected(422, "invalid_value", str(exc)) from exc


def provider_payload(content_type: str, body: bytes) -> ProviderPayload:
    """A webhook body for the archive: whole up to ``PROVIDER_PAYLOAD_MAX`` bytes, else its size
    and digest only (an email with its attachments stays in the media store, not in events)."""
    whole = len(body) <= PROVIDER_PAYLOAD_MAX
    return ProviderPayload(
        content_type=content_type,
        body=body.decode("utf-8", "replace").replace("\x00", "\ufffd") if whole else None,
        size=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class MessageEdit:
    """The customer changed a message they sent (Telegram's ``edited_message``, Meta's
    ``message_edit``): the stored message shows the new text, marked edited, and keeps the
    earlier one. ``edit_id`` names this edit (a redelivery is recognised by it)."""

    #: the provider id of the message edited
    provider_message_id: str
    edit_id: str
    sender: Sender
    content: str | None
    edited_at: datetime | None = None

    def __post_init__(self) -> None:
        try:
            values.key(self.provider_message_id, "message id")
            values.key(self.edit_id, "edit id")
            values.text(self.sender.channel, "sender channel")
            values.key(self.sender.address, "sender address")
            values.text(self.content, "content", values.CONTENT_MAX)
            values.timestamp(self.edited_at, "edited_at")
        except values.Unstorable as exc:
            raise WebhookRejected(422, "invalid_value", str(exc)) from exc


@dataclasses.dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A provider's delivery report for a message the hub sent."""

    provider_message_id: str
    status: MessageStatus
    provider_status: str
    error_code: str | None = None
    error_message: str | None = None

    def __post_init__(self) -> None:
        try:
            values.key(self.provider_message_id, "message id")
            values.text(self.provider_status, "status")
            values.text(self.error_code, "error code")
            values.text(self.error_message, "error message")
        except values.Unstorable as exc:
            raise WebhookRejected(422, "invalid_value", str(exc)) from exc


def _storable_message(message: InboundMessage) -> None:
    values.key(message.provider_message_id, "message id")
    values.text(message.sender.channel, "sender channel")
    values.key(message.sender.address, "sender address")
    values.text(message.sender.name, "sender name")
    values.text(message.content, "content", values.CONTENT_MAX)
    values.text(message.content_type, "content type")
    values.timestamp(message.sent_at, "sent_at")
    values.key(message.reply_to, "reply_to")
    if message.thread is not None:
        for ref in message.thread.refs:
            values.key(ref, "thread reference")
        values.key(message.thread.key, "thread key")
    for name, value in message.conversation_attributes.items():
        values.key(name, "conversation attribute name")
        values.text(value, "conversation attribute")
    for a in message.attachments:
        values.text(a.url, "attachment url", values.URL_MAX)
        values.text(a.content_type, "attachment content type")
        values.text(a.filename, "attachment filename")
        values.bigint(a.size, "attachment size")
    for m in message.media:
        values.text(m.ref, "media reference", values.URL_MAX)
        values.text(m.content_type, "media content type")
        values.text(m.filename, "media filename")
    for f in message.files:
        values.key(f.key, "file key")
        values.text(f.filename, "file name")
        values.text(f.content_type, "file content type")
        values.bigint(f.size, "file size")


@dataclasses.dataclass(frozen=True, slots=True)
class DirectReply:
    """What to answer the provider instead of the default JSON (a verification challenge, or
    Twilio's empty TwiML)."""

    body: bytes = b""
    content_type: str = "text/plain"
    status: int = 200


@dataclasses.dataclass(frozen=True, slots=True)
class Watermark:
    """ "Everything the business sent this contact up to ``until`` has reached ``status``":
    how Messenger reports deliveries and reads, without naming the messages."""

    #: the contact's address on the channel's identity channel
    address: str
    until: datetime
    status: MessageStatus
    provider_status: str


@dataclasses.dataclass(frozen=True, slots=True)
class Profile:
    """What a provider says about a sender (Messenger's and Instagram's user profile)."""

    name: str | None = None
    #: the provider's picture URL as it gave it (Meta's expire after a while)
    picture_url: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookResult:
    messages: Sequence[InboundMessage] = ()
    statuses: Sequence[StatusUpdate] = ()
    reply: DirectReply | None = None
    #: messages the business sent to a contact from elsewhere (the page's own inbox, another
    #: app): stored as outgoing, already sent; ``sender`` is the contact they went to
    echoes: Sequence[InboundMessage] = ()
    watermarks: Sequence[Watermark] = ()
    #: customers' changes to messages they sent earlier
    edits: Sequence[MessageEdit] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class InboxContext:
    id: str
    account_id: str
    channel: str
    name: str
    reopen_policy: str
    settings: Mapping[str, Any]
    secrets: Mapping[str, Any]
    #: ``False``: an administrator disabled the inbox (webhooks refused, nothing sent)
    enabled: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookRequest:
    method: str
    #: path and query as received
    path_qs: str
    content_type: str
    headers: Mapping[str, str]
    body: bytes
    #: the URL the provider called: the configured public base URL (``HUB_PUBLIC_URL``) joined to
    #: ``path_qs``, since the Host a proxy forwards cannot be trusted; what URL signatures cover
    url: str = ""


class WebhookRejected(Exception):
    """Bad input from outside: answered with ``status`` and a JSON error, nothing stored."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class MediaFetchError(Exception):
    """A provider-held file could not be fetched; ``retryable`` for timeouts, 429 and 5xx;
    ``too_large`` when its size is the reason (larger than the provider lets apps download)."""

    def __init__(self, message: str, *, retryable: bool, too_large: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.too_large = too_large


@dataclasses.dataclass(frozen=True, slots=True)
class FetchedMedia:
    content_type: str
    filename: str | None
    chunks: AsyncIterator[bytes]


_TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Za-z]{2,4})?")
MAX_TEMPLATE_PARAMETERS = 100
MAX_TEMPLATE_PARAMETER = 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Template:
    """A message template the provider holds and has approved (WhatsApp's templates), sent with
    the values for its body's numbered variables: the only message a channel with a reply window
    may send once the window has closed. The provider keeps the text, so the hub shows
    :meth:`preview`."""

    name: str
    #: the template's language code as the provider has it (``en_US``, ``si``, ``ta``)
    language: str
    #: the values of ``{{1}}``, ``{{2}}``, ... in the template's body, in order
    body_parameters: tuple[str, ...] = ()

    def check(self) -> None:
        """``ValueError`` saying what the provider would refuse."""
        if not _TEMPLATE_NAME.fullmatch(self.name):
            raise ValueError("a template name is lowercase letters, digits and underscores")
        if not _LANGUAGE.fullmatch(self.language):
            raise ValueError("a template language is a code such as en, en_US or si")
        if len(self.body_parameters) > MAX_TEMPLATE_PARAMETERS:
            raise ValueError(f"a template takes at most {MAX_TEMPLATE_PARAMETERS} parameters")
        for value in self.body_parameters:
            if not value.strip() or len(value) > MAX_TEMPLATE_PARAMETER:
                raise ValueError(
                    f"template parameters are 1 to {MAX_TEMPLATE_PARAMETER} characters, not blank"
                )
            # WhatsApp refuses parameters with line breaks, tabs or more than four spaces in a row
            if "\x00" in value or "\n" in value or "\t" in value or "     " in value:
                raise ValueError(
                    "template parameters hold no line breaks, tabs or runs of five spaces"
                )

    def stored(self) -> dict[str, Any]:
        """As ``messages.template`` keeps it."""
        return {
            "name": self.name,
            "language": self.language,
            "body_parameters": list(self.body_parameters),
        }

    @classmethod
    def from_stored(cls, value: Mapping[str, Any]) -> Template:
        return cls(
            name=str(value["name"]),
            language=str(value["language"]),
            body_parameters=tuple(str(p) for p in value.get("body_parameters") or ()),
        )

    def preview(self) -> str:
        """What an agent reads on the timeline in place of the provider-held text."""
        shown = f"Template {self.name} ({self.language})"
        if self.body_parameters:
            shown += ": " + ", ".join(self.body_parameters)
        return shown


@dataclasses.dataclass(frozen=True, slots=True)
class OutboundMessage:
    message_id: str
    conversation_id: str
    #: the contact's address on the manifest's identity channel (E.164 for "phone")
    to: str
    content: str | None
    content_type: str = "text"
    #: as stored on the message (``url``, ``content_type``, ``filename``, ``size``, ...)
    attachments: tuple[Mapping[str, Any], ...] = ()
    #: a template to send instead of ``content`` (``content`` is then its preview)
    template: Template | None = None
    #: when the contact last wrote in this inbox; set for channels with a ``reply_window``
    last_inbound_at: datetime | None = None
    #: the provider ids of the conversation's earlier messages, oldest first (the latest few):
    #: what a channel that threads by message ids (email's References) says the reply follows
    thread_refs: tuple[str, ...] = ()
    #: the conversation's latest thread key (:class:`ThreadHint`; email: its subject)
    thread_key: str | None = None
    #: an email reply's ``cc`` and ``bcc`` address lists and ``subject``, as the agent gave them
    email: Mapping[str, Any] | None = None
    #: choices offered with the reply, on channels with the ``quick_replies`` capability
    quick_replies: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class SendResult:
    provider_message_id: str
    status: MessageStatus = MessageStatus.SENT


class SendError(Exception):
    """The provider refused or could not be reached. ``code`` is the provider's error code when it
    gave one (Twilio's ``21211``), else ours (``network_error``, ``circuit_open``)."""

    def __init__(
        self, code: str, message: str, *, retryable: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


class SettingsInvalid(ValueError):
    """``field``: the setting the message is about, when it is about one (forms show the
    message next to it)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclasses.dataclass(frozen=True)
class ChannelEnv:
    """What a started adapter may use: the hub's public base URL (status callback URLs) and an
    HTTP session it does not own."""

    public_url: str | None
    http: aiohttp.ClientSession
    #: the hub's media store, for channels that upload agents' files to the provider
    media: MediaStore | None = None

    def webhook_url(self, inbox: InboxContext) -> str | None:
        if not self.public_url:
            return None
        return f"{self.public_url.rstrip('/')}/webhooks/{inbox.channel}/{inbox.id}"


class ChannelAdapter(Protocol):
    manifest: Manifest

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        """Raise :class:`SettingsInvalid` saying what is wrong with an inbox's settings."""
        ...

    async def parse_webhook(self, request: WebhookRequest, inbox: InboxContext) -> WebhookResult:
        """Verify the request (fail closed), then return the messages and status reports it
        carries. Raise :class:`WebhookRejected` for anything the sender got wrong."""
        ...

    def fetch_media(
        self, inbox: InboxContext, ref: MediaRef, http: aiohttp.ClientSession
    ) -> AbstractAsyncContextManager[FetchedMedia]:
        """Open a provider-held file; :class:`MediaFetchError` if it cannot be had."""
        ...

    def delivers(self, inbox: InboxContext) -> bool:
        """Whether replies in this inbox are sent through the provider (else they stay queued)."""
        ...

    def account_key(self, inbox: InboxContext) -> str:
        """The provider account behind the inbox: what one circuit breaker guards."""
        ...

    def sender_limit(self, inbox: InboxContext) -> tuple[str, float]:
        """The sender (a number, a service) and the messages per second it may send."""
        ...

    async def send(self, inbox: InboxContext, message: OutboundMessage) -> SendResult:
        """One attempt (retries, breaker and rate limit are the caller's); :class:`SendError`."""
        ...

    async def sender_profile(
        self, inbox: InboxContext, address: str, http: aiohttp.ClientSession
    ) -> Profile | None:
        """The provider's profile of a sender the hub does not know yet (``None``: none); asked
        once, before the sender's first message is stored. :class:`MediaFetchError` (or a
        network error) if it cannot be had: the message is stored without it."""
        ...

    async def typing(self, inbox: InboxContext, to: str, http: aiohttp.ClientSession) -> None:
        """Show the customer ``to`` that the business is typing (channels with ``typing``);
        :class:`SendError` if the provider refuses."""
        ...

    async def start(self, env: ChannelEnv) -> None: ...

    async def stop(self) -> None: ...
