"""Conversations and their messages: list, read, change, reply, private notes, attachments."""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from msgspec import UNSET, UnsetType

from gateway.responses import ApiError
from gateway.route import Call, Reply, route
from gateway.routes._common import Limit, PrefixSearch, record_id, refusal
from hub.actions.conversations import Changes, ConversationRefused, update_conversation
from hub.actions.messages import (
    MAX_CONTENT,
    MessageRefused,
    NewAttachment,
    create_agent_message,
)
from hub.authz import Permission
from hub.contracts.channel import Template
from hub.fields import NO_NUL, ClientId, Content, RecordId
from hub.logs import correlation_id
from hub.media import MediaNotFound, MediaStore, MediaTooLarge, media_store
from hub.store.db import in_transaction
from hub.store.reads import (
    BadCursor,
    account_inbox_ids,
    conversation_exists,
    get_conversation,
    inbox_counters,
    list_conversation_events,
    list_conversations,
    list_messages,
)

Status = Literal["open", "pending", "snoozed", "resolved"]
Priority = Literal["low", "medium", "high", "urgent"]
Sort = Literal["last_activity", "created", "priority"]
LabelName = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=NO_NUL)]
# blank or too long content stays a refusal of the action (empty_message, content_too_long),
# as sockets get it


class ConversationQuery(msgspec.Struct, forbid_unknown_fields=True):
    status: Status | None = None
    inbox_id: RecordId | None = None
    assignee_id: RecordId | None = None
    contact_id: RecordId | None = None  # a contact's conversations (the contact panel)
    team_id: RecordId | None = None
    label: LabelName | None = None
    priority: Priority | None = None
    unassigned: bool = msgspec.field(default=False)
    mine: bool = False
    q: PrefixSearch | None = None
    sort: Sort = "last_activity"
    limit: Limit = 50
    cursor: str | None = None


class Conversation(msgspec.Struct):
    id: str
    inbox_id: str
    contact_id: str
    contact_name: str | None
    status: Status
    assignee_id: str | None
    team_id: str | None
    labels: list[str]
    priority: Priority | None
    snoozed_until: datetime | None
    messages_count: int
    last_message_at: datetime | None
    last_activity_at: datetime
    created_at: datetime
    unread_count: int = 0
    last_message_preview: str | None = None  # the newest message's first 140 characters
    last_inbound_at: datetime | None = None  # the contact's newest message
    #: its id: the unread count holds the contact's messages up to this one
    last_inbound_message_id: str | None = None
    muted: bool = False  # muted by a rule or an agent (docs/automation.md)
    #: what channels learnt about the conversation (``start_payload``: a Telegram deep link's)
    attributes: dict[str, str] = {}


class InboxCounters(msgspec.Struct):
    inbox_id: str
    open: int
    pending: int
    snoozed: int
    unassigned: int
    assigned: dict[str, int]


class ConversationPage(msgspec.Struct):
    data: list[Conversation]
    next_cursor: str | None
    inboxes: list[InboxCounters]


class PageQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Limit = 50
    cursor: str | None = None


class Message(msgspec.Struct):
    id: str
    conversation_id: str
    inbox_id: str
    direction: Literal["inbound", "outbound"]
    private: bool
    sender_type: str
    sender_id: str | None
    content: str | None
    content_type: str
    attachments: list[dict[str, Any]]
    provider_message_id: str | None
    status: str
    error_code: str | None
    error_message: str | None
    sent_at: datetime | None
    created_at: datetime
    #: an agent's email reply: ``cc``, ``bcc`` and ``subject`` as sent; otherwise null
    email: dict[str, Any] | None = None
    #: when the contact last changed the message (``content`` is then the newest text)
    edited_at: datetime | None = None
    #: every edit applied, oldest first: ``edit_id``, ``edited_at``, ``previous_content``
    edits: list[dict[str, Any]] | None = None
    #: the AI part's findings, null until it analysed the message (or without the AI part):
    #: language code (``si``, ``si-Latn``, ``en``, ...), a customer message's sentiment (VADER
    #: compound, -1..1) and its intent labels above the account's threshold
    language: str | None = None
    sentiment: float | None = None
    intents: list[str] | None = None


class MessagePage(msgspec.Struct):
    data: list[Message]
    next_cursor: str | None


TemplateName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_]{1,512}$")]
TemplateLanguage = Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$")]
TemplateValue = Annotated[str, msgspec.Meta(min_length=1, max_length=1024, pattern=NO_NUL)]


class TemplateIn(msgspec.Struct, forbid_unknown_fields=True):
    """An approved provider template (WhatsApp), with the values of its body's ``{{n}}``."""

    name: TemplateName
    language: TemplateLanguage
    body_parameters: Annotated[list[TemplateValue], msgspec.Meta(max_length=100)] = []


EmailAddress = Annotated[
    str, msgspec.Meta(max_length=254, pattern=r"^[^@\s<>,;:\"()\[\]\\]+@[^@\s<>,;:\"()\[\]\\]+$")
]
EmailAddresses = Annotated[list[EmailAddress], msgspec.Meta(max_length=50)]
Subject = Annotated[str, msgspec.Meta(min_length=1, max_length=900, pattern=r"^[^\r\n\x00]+$")]


class EmailOptions(msgspec.Struct, forbid_unknown_fields=True):
    """A reply in an email inbox: more recipients, and the subject (default: ``Re:`` and the
    thread's subject). Bcc addresses get the mail without appearing in its headers."""

    cc: EmailAddresses = msgspec.field(default_factory=list)
    bcc: EmailAddresses = msgspec.field(default_factory=list)
    subject: Subject | None = None


QuickReply = Annotated[str, msgspec.Meta(min_length=1, max_length=20, pattern=NO_NUL)]


class NewMessage(msgspec.Struct, forbid_unknown_fields=True):
    """A reply (``content``, or a ``template`` on channels that have them) or a private note.
    On a channel with a reply window (WhatsApp: 24 hours after the contact's last message) only
    a template may be sent once it has closed: 422 ``window_closed``."""

    content: Content = ""
    private: bool = False
    client_id: ClientId | None = None
    template: TemplateIn | None = None
    #: email inboxes only (422 ``email_options_not_supported`` elsewhere)
    email: EmailOptions | None = None
    #: choices the customer can tap (Messenger, Instagram, Telegram)
    quick_replies: Annotated[list[QuickReply], msgspec.Meta(max_length=13)] = []


class SentMessage(msgspec.Struct):
    id: str
    conversation_id: str
    status: str
    private: bool
    duplicate: bool


class ConversationChanges(msgspec.Struct, forbid_unknown_fields=True):
    """Only the fields sent change; ``null`` clears a field. Snoozing needs ``snoozed_until`` in
    the future; any other status clears it."""

    status: Status | UnsetType = UNSET
    assignee_id: RecordId | UnsetType | None = UNSET
    team_id: RecordId | UnsetType | None = UNSET
    labels: Annotated[list[LabelName], msgspec.Meta(max_length=50)] | UnsetType = UNSET
    priority: Priority | UnsetType | None = UNSET
    snoozed_until: Annotated[datetime, msgspec.Meta(tz=True)] | UnsetType | None = UNSET
    muted: bool | UnsetType = UNSET

    def __post_init__(self) -> None:
        if isinstance(self.snoozed_until, datetime):
            try:
                utc = self.snoozed_until.astimezone(UTC)
            except OverflowError as exc:
                raise ValueError("snoozed_until is out of range") from exc
            if utc.year > 9000:
                raise ValueError("snoozed_until is out of range")


@route(
    "GET",
    "/api/v1/conversations",
    permission=Permission.CONVERSATIONS_READ,
    summary="List conversations (filtered and sorted), with the inbox counters",
    tag="conversations",
    query=ConversationQuery,
    reply=ConversationPage,
)
async def list_conversations_route(call: Call) -> ConversationPage:
    """Only conversations in inboxes the caller may see; ``unread_count`` is the caller's.
    Filters combine; ``mine`` and ``unassigned`` narrow when true. Sorted newest activity first
    (``last_activity``), newest first (``created``) or most urgent first (``priority``, then
    activity); ``next_cursor`` continues the same sort."""
    q: ConversationQuery = call.query
    who = call.principal
    pool = call.hub.pool
    try:
        items, cursor = await list_conversations(
            pool,
            who.account_id,
            agent_id=who.agent_id,
            inboxes=who.inboxes,
            status=q.status,
            inbox_id=q.inbox_id,
            assignee_id=q.assignee_id,
            contact_id=q.contact_id,
            team_id=q.team_id,
            label=q.label,
            priority=q.priority,
            unassigned=q.unassigned,
            mine=q.mine,
            name_prefix=q.q,
            sort=q.sort,
            limit=q.limit,
            cursor=q.cursor,
        )
    except BadCursor as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from exc
    inboxes = [
        i
        for i in await account_inbox_ids(pool, who.account_id)
        if who.sees(i) and q.inbox_id in (None, i)
    ]
    counters = await inbox_counters(pool, inboxes)  # the same counters events carry
    return ConversationPage(
        data=msgspec.convert(items, list[Conversation]),
        next_cursor=cursor,
        inboxes=msgspec.convert([counters[i] for i in inboxes], list[InboxCounters]),
    )


async def _retrying_deadlocks(
    call: Call, action: Callable[..., Awaitable[Any]], **kwargs: Any
) -> Any:
    """Counter rows (``conversation_counts``) are locked in key order per statement, but a
    concurrent ingest batch runs two statements: a rare deadlock is retried, not a 500."""
    attempts = 3
    while True:
        attempts -= 1
        try:
            return await in_transaction(call.hub.pool, action, **kwargs)
        except asyncpg.DeadlockDetectedError:
            if not attempts:
                raise


async def _conversation(call: Call, conversation_id: str) -> Conversation:
    found = await get_conversation(call.hub.pool, call.principal, conversation_id)
    if found is None:
        raise ApiError(404, "not_found", "no such conversation")
    return msgspec.convert(found, Conversation)


@route(
    "GET",
    "/api/v1/conversations/{conversation_id}",
    permission=Permission.CONVERSATIONS_READ,
    summary="One conversation",
    tag="conversations",
    reply=Conversation,
)
async def get_conversation_route(call: Call) -> Conversation:
    return await _conversation(call, record_id(call, "conversation_id"))


@route(
    "PATCH",
    "/api/v1/conversations/{conversation_id}",
    permission=Permission.CONVERSATIONS_WRITE,
    summary="Change status, assignee, team, labels, priority or snooze",
    tag="conversations",
    body=ConversationChanges,
    reply=Conversation,
    errors=(409,),
)
async def update_conversation_route(call: Call) -> Conversation:
    """The assignee must be an enabled user who may see the conversation's inbox, the team and
    the labels must exist in the account (422 otherwise). A change is announced as one
    ``conversation.updated`` event holding the previous values; no change, no event. Reopening
    while the contact has another unresolved conversation in the inbox is a 409."""
    body: ConversationChanges = call.body
    who = call.principal
    conversation_id = record_id(call, "conversation_id")
    try:
        await _retrying_deadlocks(
            call,
            update_conversation,
            account_id=who.account_id,
            agent_id=who.agent_id,
            conversation_id=conversation_id,
            changes=Changes(
                status=body.status,
                assignee_id=body.assignee_id,
                team_id=body.team_id,
                labels=body.labels,
                priority=body.priority,
                snoozed_until=body.snoozed_until,
                muted=body.muted,
            ),
            inboxes=who.inboxes,
            correlation_id=correlation_id.get(),
        )
    except ConversationRefused as exc:
        raise refusal(exc) from exc
    except asyncpg.UniqueViolationError as exc:  # reopened while a new one was started
        raise ApiError(
            409, "conflict", "the contact has another unresolved conversation in this inbox"
        ) from exc
    return await _conversation(call, conversation_id)


@route(
    "GET",
    "/api/v1/conversations/{conversation_id}/messages",
    permission=Permission.CONVERSATIONS_READ,
    summary="A conversation's timeline, oldest first",
    tag="conversations",
    query=PageQuery,
    reply=MessagePage,
)
async def list_messages_route(call: Call) -> MessagePage:
    q: PageQuery = call.query
    who = call.principal
    conversation_id = record_id(call, "conversation_id")
    if not await conversation_exists(call.hub.pool, who, conversation_id):
        raise ApiError(404, "not_found", "no such conversation")
    try:
        items, cursor = await list_messages(
            call.hub.pool, who.account_id, conversation_id, limit=q.limit, cursor=q.cursor
        )
    except BadCursor as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from exc
    return MessagePage(data=msgspec.convert(items, list[Message]), next_cursor=cursor)


class ConversationEvent(msgspec.Struct):
    """A change on the conversation's timeline: created, assigned, resolved, reopened, ..."""

    id: str
    type: str
    occurred_at: datetime
    actor: dict[str, Any] | None
    payload: dict[str, Any]


class ConversationEventPage(msgspec.Struct):
    data: list[ConversationEvent]
    next_cursor: str | None


@route(
    "GET",
    "/api/v1/conversations/{conversation_id}/events",
    permission=Permission.CONVERSATIONS_READ,
    summary="A conversation's changes and calls (created, assigned, status, ...), oldest first",
    tag="conversations",
    query=PageQuery,
    reply=ConversationEventPage,
)
async def list_conversation_events_route(call: Call) -> ConversationEventPage:
    """From the event journal, so a change appears here once the journal consumer has written
    it (normally within a fraction of a second); the live stream carries it at once."""
    q: PageQuery = call.query
    who = call.principal
    conversation_id = record_id(call, "conversation_id")
    if not await conversation_exists(call.hub.pool, who, conversation_id):
        raise ApiError(404, "not_found", "no such conversation")
    try:
        items, cursor = await list_conversation_events(
            call.hub.pool, who.account_id, conversation_id, limit=q.limit, cursor=q.cursor
        )
    except BadCursor as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from exc
    return ConversationEventPage(
        data=msgspec.convert(items, list[ConversationEvent]), next_cursor=cursor
    )


def _client_id(request: web.Request, in_body: str | None) -> str | None:
    header = request.headers.get("Idempotency-Key")
    if header is None:
        return in_body
    try:
        key = msgspec.convert(header, ClientId)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_idempotency_key", f"Idempotency-Key: {exc}") from exc
    if in_body is not None and in_body != key:
        raise ApiError(422, "idempotency_key_mismatch", "Idempotency-Key differs from client_id")
    return key


@route(
    "POST",
    "/api/v1/conversations/{conversation_id}/messages",
    permission=Permission.CONVERSATIONS_WRITE,
    summary="Send a reply or add a private note",
    tag="conversations",
    body=NewMessage,
    reply=SentMessage,
    status=201,
    replays=True,
)
async def post_message_route(call: Call) -> Reply:
    """A reply is queued for the channel; a private note is never delivered. ``client_id`` (or
    the ``Idempotency-Key`` header, its usual spelling for HTTP clients) makes it safe to retry:
    the same key returns the stored message with 200 instead of 201."""
    body: NewMessage = call.body
    who = call.principal
    client_id = _client_id(call.request, body.client_id)
    template = None
    if body.template is not None:
        t = body.template
        template = Template(t.name, t.language, tuple(t.body_parameters))
    try:
        sent = await in_transaction(
            call.hub.pool,
            create_agent_message,
            account_id=who.account_id,
            agent_id=who.agent_id,
            conversation_id=record_id(call, "conversation_id"),
            content=body.content,
            private=body.private,
            client_id=client_id,
            correlation_id=correlation_id.get(),
            inboxes=who.inboxes,
            template=template,
            enforce_reply_window=True,
            email=msgspec.to_builtins(body.email) if body.email is not None else None,
            quick_replies=tuple(body.quick_replies),
        )
    except MessageRefused as exc:
        raise refusal(exc) from exc
    reply = SentMessage(sent.id, sent.conversation_id, sent.status, sent.private, sent.duplicate)
    return Reply(reply, status=200 if sent.duplicate else 201)


class AttachmentInfo(msgspec.Struct):
    id: str
    key: str
    filename: str
    content_type: str
    size: int
    url: str


class UploadedMessage(msgspec.Struct):
    id: str
    conversation_id: str
    status: str
    private: bool
    attachments: list[AttachmentInfo]


_CONTENT_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}"
)
_IDENTITY_ENCODINGS = {"", "identity", "binary", "7bit", "8bit"}
_FORM_FIELD_MAX = 4 * MAX_CONTENT  # bytes of UTF-8 for the longest content


def _filename(raw: str | None) -> str:
    """A display name only (never a path): the last path segment, no control characters."""
    # clients percent-encode names (aiohttp) or send them raw (browsers)
    name = urllib.parse.unquote(raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()[:255]
    return name or "attachment"


def _part_type(part: BodyPartReader) -> str:
    value = part.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    return value if _CONTENT_TYPE.fullmatch(value) else "application/octet-stream"


async def _field_text(part: BodyPartReader, limit: int) -> str:
    data = bytearray()
    while chunk := await part.read_chunk():
        data += chunk
        if len(data) > min(limit, _FORM_FIELD_MAX):
            raise ApiError(413, "body_too_large", f"the {part.name} field is too long")
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise ApiError(422, "invalid_body", f"the {part.name} field is not UTF-8") from exc
    if "\x00" in text:
        raise ApiError(422, "invalid_body", f"the {part.name} field contains NUL")
    return text


async def _chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(64 * 1024):
        yield chunk


@dataclasses.dataclass
class _Upload:
    attachment: NewAttachment | None = None
    content: str = ""
    private: bool = False


async def _read_upload(
    request: web.Request, store: MediaStore, account_id: str, limit: int, upload: _Upload
) -> NewAttachment:
    """Stream the form into ``upload`` (the file into the store as it arrives, so that the
    caller can remove it if anything fails later); the stored file."""
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise ApiError(422, "invalid_body", "nested multipart is not supported")
            encoding = part.headers.get("Content-Transfer-Encoding", "").lower()
            if encoding not in _IDENTITY_ENCODINGS or part.headers.get("Content-Encoding"):
                raise ApiError(422, "invalid_body", "send parts without encodings")
            if part.name == "file" and upload.attachment is None:
                name, kind = _filename(part.filename), _part_type(part)
                stored = await store.put(account_id, name, kind, _chunks(part), max_bytes=limit)
                upload.attachment = NewAttachment(
                    stored.key, name, stored.content_type, stored.size, stored.sha256
                )
            elif part.name == "file":
                raise ApiError(422, "invalid_body", "send one file per message")
            elif part.name == "content":
                upload.content = await _field_text(part, limit)
            elif part.name == "private":
                value = (await _field_text(part, limit)).strip().lower()
                if value not in ("true", "false", "1", "0", "on", "off"):
                    raise ApiError(422, "invalid_body", "private must be true or false")
                upload.private = value in ("true", "1", "on")
            else:  # fields this route does not know are skipped, as forms do
                await part.release()
    except MediaTooLarge as exc:
        raise ApiError(413, "body_too_large", f"the file is larger than {limit} bytes") from exc
    except (ValueError, LookupError, AssertionError, HttpProcessingError) as exc:
        raise ApiError(400, "invalid_multipart", "the multipart body is malformed") from exc
    if upload.attachment is None:
        raise ApiError(422, "invalid_body", "the file field is missing")
    return upload.attachment


class AttachmentForm(msgspec.Struct):
    """The upload's form fields besides ``file``."""

    content: str | None = None  # a caption
    private: bool = False  # a private note instead of a reply


@route(
    "POST",
    "/api/v1/conversations/{conversation_id}/attachments",
    permission=Permission.CONVERSATIONS_WRITE,
    summary="Send a file (multipart field `file`; optional `content` and `private` fields)",
    tag="conversations",
    reply=UploadedMessage,
    status=201,
    upload=True,
    form=AttachmentForm,
)
async def upload_attachment_route(call: Call) -> UploadedMessage:
    """The file goes to the media store and a reply (or, with ``private=true``, a note) carrying
    it is created; download it from the ``url`` given. Files larger than the body limit are 413."""
    who = call.principal
    request = call.request
    conversation_id = record_id(call, "conversation_id")
    if not await conversation_exists(call.hub.pool, who, conversation_id):
        raise ApiError(404, "not_found", "no such conversation")
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "send the file as multipart/form-data")
    limit = call.hub.config.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "body_too_large", f"the body is larger than {limit} bytes")
    store = media_store(call.hub.config.data_dir)
    upload = _Upload()
    try:
        attachment = await _read_upload(request, store, who.account_id, limit, upload)
        sent = await in_transaction(
            call.hub.pool,
            create_agent_message,
            account_id=who.account_id,
            agent_id=who.agent_id,
            conversation_id=conversation_id,
            content=upload.content,
            private=upload.private,
            client_id=None,
            correlation_id=correlation_id.get(),
            inboxes=who.inboxes,
            attachments=[attachment],
        )
    except BaseException as exc:
        if upload.attachment is not None:  # no message holds it: nobody could ever fetch it
            await store.delete(upload.attachment.key)
        if isinstance(exc, MessageRefused):
            raise refusal(exc) from exc
        raise
    return UploadedMessage(
        sent.id,
        sent.conversation_id,
        sent.status,
        sent.private,
        [msgspec.convert(attachment.stored(), AttachmentInfo)],
    )


def _disposition(filename: str) -> str:
    fallback = "".join(
        ch if (ch.isascii() and ch.isalnum()) or ch in "._-" else "_" for ch in filename
    )
    quoted = urllib.parse.quote(filename, safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quoted}"


@route(
    "GET",
    "/api/v1/media/{key}",
    permission=Permission.CONVERSATIONS_READ,
    summary="Download an attached file",
    tag="conversations",
)
async def media_route(call: Call) -> web.StreamResponse:
    """Only for callers who can see the conversation the file was attached in. Always a download
    (``Content-Disposition: attachment``, ``nosniff``), never rendered by the browser."""
    who = call.principal
    key = record_id(call, "key")
    row = await call.hub.pool.fetchrow(
        """SELECT m.filename, m.content_type, m.size, msg.inbox_id
             FROM media m JOIN messages msg ON msg.id = m.message_id
            WHERE m.key = $1 AND m.account_id = $2""",
        key,
        who.account_id,
    )
    if row is None or not who.sees(row["inbox_id"]):
        raise ApiError(404, "not_found", "no such file")
    chunks = media_store(call.hub.config.data_dir).open(key)
    try:
        first = await anext(chunks, b"")
    except MediaNotFound as exc:
        raise ApiError(404, "not_found", "no such file") from exc

    async def body() -> AsyncIterator[bytes]:
        if first:
            yield first
        async for chunk in chunks:
            yield chunk

    return web.Response(
        body=body(),
        headers={
            "Content-Type": row["content_type"],
            "Content-Length": str(row["size"]),
            "Content-Disposition": _disposition(row["filename"]),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        },
    )


class PresenceEntry(msgspec.Struct):
    agent_id: str
    status: str


class PresenceList(msgspec.Struct):
    data: list[PresenceEntry]


@route(
    "GET",
    "/api/v1/agents/presence",
    permission=Permission.ACCOUNT_READ,
    summary="Connected agents of the account and their status",
    tag="agents",
    reply=PresenceList,
)
async def presence_route(call: Call) -> PresenceList:
    """What routing reads too."""
    agents = await call.hub.presence.of_account(call.principal.account_id)
    return PresenceList([PresenceEntry(a, s) for a, s in agents.items()])


ROUTES = [
    list_conversations_route,
    get_conversation_route,
    update_conversation_route,
    list_messages_route,
    list_conversation_events_route,
    post_message_route,
    upload_attachment_route,
    media_route,
    presence_route,
]
