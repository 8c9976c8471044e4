"""Socket.IO namespace ``/widget``: web chat visitors.

Connect with ``auth={"inbox_id", "visitor_token"?, "identifier"?, "identifier_hash"?,
"last_seq"?}`` from a page whose ``Origin`` the inbox allows. Refusals (``connect_error`` data
``{"code", "message"}``, logged with the reason, nothing stored): ``unknown_inbox``,
``origin_not_allowed``, ``invalid_visitor_token``, ``invalid_identity`` (a hash that does not
match), ``identity_required``, ``invalid_last_seq``, ``rate_limited``.

On connect the server sends ``session`` (the visitor token to keep, the pre-chat form, whether the
inbox is open), then either ``history`` (the newest messages, and the ``head`` to continue from) or,
for a reconnect with ``last_seq``, the ``events`` missed since; then live ``events``. Calls, each
acknowledged with ``{"ok": true, ...}`` or ``{"error": {"code", "message"}}``: ``prechat``,
``message``, ``typing``, ``upload``, ``rate``. See docs/channels/webchat.md.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import msgspec
import socketio
from aiohttp import web

from hub.actions.ingest import IngestRequest
from hub.actions.webchat import RatingRefused, add_contact_email, rate_conversation
from hub.app import DB_UNAVAILABLE, Hub
from hub.contracts.channel import (
    REPLY_BY_EMAIL,
    InboundMessage,
    InboxContext,
    Sender,
    StoredFile,
    WebhookRejected,
)
from hub.events import Attachment
from hub.fields import RecordId
from hub.identities import normalise_email
from hub.media import media_store
from hub.store import values
from hub.store.db import in_transaction
from hub.store.reads import load_inbox
from realtime.log import bounds
from realtime.widget import tokens
from realtime.widget.hooks import WidgetHooks, WidgetPolicy
from realtime.widget.items import client_id_of, message
from realtime.widget.streams import Visitor, VisitorStreams

log = logging.getLogger(__name__)
NAMESPACE = "/widget"
CHANNEL = "webchat"
HISTORY = 50
#: typing, form and rating calls a visitor may make per minute (messages have their own limits)
CALLS_PER_MINUTE = 120
_INBOX_TTL = 10.0

Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254)]


Text = Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]
WidgetClientId = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_-]{1,64}$")]


class MessageIn(msgspec.Struct):
    content: Text
    client_id: WidgetClientId


class TypingIn(msgspec.Struct):
    on: bool


class UploadIn(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    type: Annotated[str, msgspec.Meta(min_length=3, max_length=100)]
    client_id: WidgetClientId
    #: the file, base64 (the minified Socket.IO client's binary packets arrive mangled)
    data: Annotated[str, msgspec.Meta(max_length=15 * 1024 * 1024)]


class RateIn(msgspec.Struct):
    conversation_id: RecordId
    rating: Annotated[int, msgspec.Meta(ge=1, le=5)]
    comment: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


#: how the files the widget takes begin: a declared type must match the bytes
_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
    "application/pdf": (b"%PDF-",),
}


def _looks_like(content_type: str, data: bytes) -> bool:
    starts = _MAGIC.get(content_type)
    if starts is None:
        return b"\x00" not in data[:4096] if content_type.startswith("text/") else True
    return data.startswith(starts)


class PrechatIn(msgspec.Struct):
    name: Name | None = None
    email: Email | None = None


def _refused(code: str, message: str) -> Exception:
    error: Exception = socketio.exceptions.ConnectionRefusedError(
        message, {"code": code, "message": message}
    )
    return error


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _clean(data: Any) -> bool:
    if isinstance(data, str):
        try:
            values.text(data, "value", max_chars=len(data))
        except values.Unstorable:
            return False
    elif isinstance(data, dict):
        return all(_clean(k) and _clean(v) for k, v in data.items())
    return True


S = TypeVar("S", bound=msgspec.Struct)
Handler = Callable[[Any, str, Any], Awaitable[dict[str, Any]]]


def call(
    kind: type[S], code: str, usage: str
) -> Callable[[Callable[[Any, str, S], Awaitable[dict[str, Any]]]], Handler]:
    """A visitor call that always acks: bad data is ``code``; a refusal its own code; anything
    unforeseen ``internal_error`` (logged)."""

    def wrap(handler: Callable[[Any, str, S], Awaitable[dict[str, Any]]]) -> Handler:
        @functools.wraps(handler)
        async def handle(self: Any, sid: str, data: Any = None) -> dict[str, Any]:
            if not isinstance(data, dict) or not _clean(data):
                return _error(code, f"{usage}: send an object of text without NUL characters")
            try:
                parsed = msgspec.convert(data, kind)
            except msgspec.ValidationError as exc:
                return _error(code, f"{usage}: {exc}")
            try:
                return await handler(self, sid, parsed)
            except Refused as exc:
                log.info("widget call refused", extra={"sid": sid, "code": exc.code})
                return _error(exc.code, exc.message)
            except WebhookRejected as exc:
                return _error(exc.code, exc.message)
            except DB_UNAVAILABLE:
                return _error("unavailable", "the service is unreachable: try again")
            except Exception:
                log.exception("widget socket event failed", extra={"sid": sid})
                return _error("internal_error", "internal error")

        return handle

    return wrap


class Session(msgspec.Struct):
    account_id: str
    inbox_id: str
    address: str
    ip: str
    contact_id: str | None = None
    name: str | None = None
    email: str | None = None
    open_checked: bool = False


class WidgetNamespace(socketio.AsyncNamespace):  # type: ignore[misc]  # untyped library
    def __init__(self, hub: Hub, hooks: WidgetHooks, streams: VisitorStreams) -> None:
        super().__init__(NAMESPACE)
        self._hub = hub
        self._hooks = hooks
        self._streams = streams
        self._inboxes: dict[str, tuple[float, InboxContext | None]] = {}
        self._sessions: dict[str, Session] = {}

    # ------------------------------------------------------------------ connecting
    async def _inbox(self, inbox_id: str) -> InboxContext | None:
        hit = self._inboxes.get(inbox_id)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        inbox = await load_inbox(self._hub.pool, self._hub.box, inbox_id)
        if len(self._inboxes) > 10_000:
            self._inboxes.clear()
        self._inboxes[inbox_id] = (now + (_INBOX_TTL if inbox else 1.0), inbox)
        return inbox

    async def _policy(self, inbox_id: str) -> WidgetPolicy | None:
        inbox = await self._inbox(inbox_id)
        if inbox is None or inbox.channel != CHANNEL:
            return None
        return self._hooks.policy_of(inbox)

    async def _limit(self, key: str, per_minute: int) -> None:
        wait = await self._hooks.take(key, per_minute / 60.0, float(per_minute))
        if wait > 0:
            raise Refused("rate_limited", f"too many messages: wait {int(wait) + 1} s")

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            await self._connect(sid, environ, auth if isinstance(auth, dict) else {})
        except Refused as exc:
            log.warning(
                "widget visitor refused",
                extra={
                    "code": exc.code,
                    "reason": exc.message,
                    "inbox_id": str(auth.get("inbox_id"))[:64] if isinstance(auth, dict) else None,
                    "origin": str(environ.get("HTTP_ORIGIN", ""))[:200],
                },
            )
            raise _refused(exc.code, exc.message) from None

    async def _connect(self, sid: str, environ: dict[str, Any], auth: dict[str, Any]) -> None:
        inbox_id = auth.get("inbox_id")
        if not isinstance(inbox_id, str) or not 0 < len(inbox_id) <= 64 or not _clean(inbox_id):
            raise Refused("unknown_inbox", "connect with auth={inbox_id}")
        policy = await self._policy(inbox_id)
        if policy is None:
            raise Refused("unknown_inbox", "no web chat inbox with that id")
        origin = str(environ.get("HTTP_ORIGIN", "")).lower()
        if origin not in policy.allowed_origins:
            raise Refused("origin_not_allowed", "this site may not embed the inbox's widget")
        last_seq = auth.get("last_seq")
        if last_seq is not None and (
            isinstance(last_seq, bool) or not isinstance(last_seq, int) or last_seq < 0
        ):
            raise Refused("invalid_last_seq", "last_seq must be a whole number >= 0")
        request = environ.get("aiohttp.request")
        ip = self._hooks.client_address(request) if isinstance(request, web.Request) else "?"
        secret = policy.identity_secret
        issued: str | None = None
        identifier, given = auth.get("identifier"), auth.get("identifier_hash")
        if identifier is not None or given is not None:
            if (
                not isinstance(identifier, str)
                or not isinstance(given, str)
                or not 0 < len(identifier) <= 200
                or not _clean(identifier)
                or not tokens.identity_ok(secret, identifier, given)
            ):
                raise Refused("invalid_identity", "the identity hash does not match")
            address = "user:" + identifier
        elif policy.require_identity:
            raise Refused("identity_required", "this inbox talks only to identified visitors")
        else:
            token = auth.get("visitor_token")
            if token is not None:
                visitor = tokens.verify(secret, inbox_id, token) if isinstance(token, str) else None
                if visitor is None:
                    raise Refused("invalid_visitor_token", "the visitor token is not valid")
            else:  # a new visitor: limited per address, as messages are
                await self._limit(f"webchat:new:{inbox_id}:{ip}", policy.ip_per_minute)
                visitor = tokens.new_visitor()
                issued = tokens.issue(secret, inbox_id, visitor)
            address = "visitor:" + visitor
        inbox = policy.inbox
        pool = self._hub.pool
        row = await pool.fetchrow(
            """SELECT ci.contact_id, c.name FROM contact_identities ci
                 JOIN contacts c ON c.id = ci.contact_id
                WHERE ci.account_id = $1 AND ci.channel = $2 AND ci.address = $3""",
            inbox.account_id,
            CHANNEL,
            address,
        )
        contact_id = row["contact_id"] if row else None
        conversations = (
            {
                r["id"]
                for r in await pool.fetch(
                    "SELECT id FROM conversations WHERE contact_id = $1 AND inbox_id = $2",
                    contact_id,
                    inbox.id,
                )
            }
            if contact_id
            else set()
        )
        low, high = await bounds(pool, inbox.account_id)
        cursor = last_seq if last_seq is not None and low - 1 <= last_seq <= high else None
        session = Session(
            inbox.account_id, inbox.id, address, ip, contact_id, row["name"] if row else None
        )
        self._sessions[sid] = session
        for conversation in conversations:
            await self.enter_room(sid, f"conversation:{conversation}")
        await self.emit(
            "session",
            {
                "visitor_token": issued,
                "known": contact_id is not None,
                "prechat": [{"field": f, "required": r} for f, r in policy.prechat],
                "open": await self._hooks.open_now(inbox),
                "upload_types": sorted(policy.upload_types),
                "upload_max_bytes": policy.upload_max_bytes,
            },
            to=sid,
        )
        if cursor is None:
            await self.emit(
                "history", {"head": high, "messages": await self._history(session)}, to=sid
            )
        if self._sessions.get(sid) is not session:
            return  # it left while connecting: nothing to deliver to
        visitor_state = Visitor(sid, inbox.id, contact_id, conversations)
        self._streams.add(inbox.account_id, visitor_state, high if cursor is None else cursor, high)
        log.info(
            "widget visitor connected",
            extra={
                "sid": sid,
                "inbox_id": inbox.id,
                "replay": cursor is not None,
                "known": bool(contact_id),
            },
        )

    async def _history(self, session: Session) -> list[dict[str, Any]]:
        if session.contact_id is None:
            return []
        rows = await self._hub.pool.fetch(
            """SELECT m.id, m.direction, m.content, m.attachments::text AS attachments,
                      m.created_at, m.provider_message_id
                 FROM messages m JOIN conversations c ON c.id = m.conversation_id
                WHERE c.contact_id = $1 AND c.inbox_id = $2 AND NOT m.private
                ORDER BY m.id DESC LIMIT $3""",
            session.contact_id,
            session.inbox_id,
            HISTORY,
        )
        return [
            message(
                r["id"],
                r["direction"] == "inbound",
                r["content"],
                msgspec.json.decode(r["attachments"]),
                r["created_at"].isoformat(),
                client_id_of(r["provider_message_id"]),
            )
            for r in reversed(rows)
        ]

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        session = self._sessions.pop(sid, None)
        if session is not None:
            self._streams.remove(session.account_id, sid)

    # ------------------------------------------------------------------ calls
    def _session(self, sid: str) -> Session:
        session = self._sessions.get(sid)
        if session is None:
            raise Refused("not_connected", "connect first")
        return session

    async def _limited_session(self, sid: str) -> Session:
        """The session of a visitor making a call other than a message, within its budget."""
        session = self._session(sid)
        await self._limit(f"webchat:calls:{session.inbox_id}:{session.address}", CALLS_PER_MINUTE)
        return session

    async def _ready_policy(self, session: Session) -> WidgetPolicy:
        policy = await self._policy(session.inbox_id)
        if policy is None:  # the inbox was removed or its settings broken meanwhile
            raise Refused("unknown_inbox", "the inbox no longer takes visitors")
        return policy

    @call(PrechatIn, "invalid_prechat", "send {name?, email?}")
    async def on_prechat(self, sid: str, data: PrechatIn) -> dict[str, Any]:
        """The pre-chat form's answers, used for the visitor's contact at its first message."""
        session = await self._limited_session(sid)
        if data.email is not None:
            email = normalise_email(data.email)
            if email is None:
                raise Refused("invalid_email", "that is not an email address")
            session.email = email
        if data.name is not None and data.name.strip():
            session.name = data.name.strip()
        if session.contact_id is not None and session.email is not None:
            await self._keep_email(session)
        return {"ok": True}

    async def _keep_email(self, session: Session) -> None:
        assert session.contact_id is not None and session.email is not None
        await in_transaction(
            self._hub.pool,
            add_contact_email,
            account_id=session.account_id,
            contact_id=session.contact_id,
            email=session.email,
        )

    async def _admit(self, session: Session, policy: WidgetPolicy) -> None:
        """The abuse limits and the pre-chat form, checked before anything is stored."""
        await self._limit(
            f"webchat:visitor:{session.inbox_id}:{session.address}", policy.visitor_per_minute
        )
        await self._limit(f"webchat:ip:{session.inbox_id}:{session.ip}", policy.ip_per_minute)
        if session.contact_id is None:
            missing = [f for f, required in policy.prechat if required and not getattr(session, f)]
            if (
                not missing
                and session.email is None
                and not await self._hooks.open_now(policy.inbox)
            ):
                missing = ["email"]  # offline: the reply can only reach them by mail
            if missing:
                raise Refused("prechat_required", f"fill in the form first: {', '.join(missing)}")
        elif not session.open_checked:  # once per connection: not a query per message
            await self._check_open_conversations(session, policy)
            session.open_checked = True

    async def _ingest(
        self, sid: str, session: Session, policy: WidgetPolicy, message_in: InboundMessage
    ) -> dict[str, Any]:
        result = await self._hub.ingest.submit(IngestRequest(policy.inbox, message_in))
        if session.contact_id is None:
            session.contact_id = result.contact_id
            if session.email is not None:
                await self._keep_email(session)
        self._streams.track(session.account_id, sid, result.contact_id, result.conversation_id)
        if self._sessions.get(sid) is session:  # still connected (it may have left meanwhile)
            await self.enter_room(sid, f"conversation:{result.conversation_id}")
        return {"ok": True, "id": result.message_id, "duplicate": result.duplicate}

    async def _check_open_conversations(self, session: Session, policy: WidgetPolicy) -> None:
        counts = await self._hub.pool.fetchrow(
            """SELECT count(*) AS open, count(*) FILTER (WHERE inbox_id = $2) AS here
                 FROM conversations WHERE contact_id = $1 AND status <> 'resolved'""",
            session.contact_id,
            session.inbox_id,
        )
        assert counts is not None
        if not counts["here"] and counts["open"] >= policy.max_open_conversations:
            raise Refused(
                "too_many_conversations",
                f"at most {policy.max_open_conversations} open conversations per visitor",
            )

    def _provider_id(self, session: Session, client_id: str) -> str:
        key = hashlib.sha256(session.address.encode()).hexdigest()[:20]
        return f"{key}/{client_id}"

    @call(MessageIn, "invalid_message", "send {content, client_id}")
    async def on_message(self, sid: str, data: MessageIn) -> dict[str, Any]:
        """A visitor's message; resending with the same ``client_id`` stores it once."""
        session = self._session(sid)
        policy = await self._ready_policy(session)
        if not data.content.strip():
            raise Refused("invalid_message", "the message is empty")
        await self._admit(session, policy)
        inbound = InboundMessage(
            provider_message_id=self._provider_id(session, data.client_id),
            sender=Sender(CHANNEL, session.address, session.name),
            content=data.content,
            conversation_attributes=await self._reply_by_email(session, policy),
        )
        return await self._ingest(sid, session, policy, inbound)

    async def _reply_by_email(self, session: Session, policy: WidgetPolicy) -> dict[str, str]:
        """Offline mode: a visitor who left an email while the inbox is closed gets the replies
        by mail (the conversation's ``reply_by_email``, read by the delivery of inboxes with a
        ``reply_email_inbox_id``); writing while it is open again ends that."""
        if session.email is None:
            return {}
        closed = not await self._hooks.open_now(policy.inbox)
        address = normalise_email(session.email) or session.email
        return {REPLY_BY_EMAIL: address if closed else ""}

    @call(UploadIn, "invalid_upload", "send {name, type, client_id, data: <base64>}")
    async def on_upload(self, sid: str, data: UploadIn) -> dict[str, Any]:
        """A file as a message of its own, into the media store; the inbox limits its type and
        size, and the bytes must be what the type says."""
        session = self._session(sid)
        policy = await self._ready_policy(session)
        content_type = data.type.lower()
        if content_type not in policy.upload_types:
            raise Refused("type_not_allowed", f"{content_type} files are not taken here")
        if len(data.data) * 3 // 4 > policy.upload_max_bytes + 2:
            raise Refused("too_large", f"files are at most {policy.upload_max_bytes} bytes")
        try:
            body = base64.b64decode(data.data, validate=True)
        except binascii.Error:
            raise Refused("invalid_upload", "data is the file in base64") from None
        if len(body) > policy.upload_max_bytes:
            raise Refused("too_large", f"files are at most {policy.upload_max_bytes} bytes")
        if not body or not _looks_like(content_type, body):
            raise Refused("invalid_upload", f"the file is not {content_type}")
        await self._admit(session, policy)
        store = media_store(self._hub.config.data_dir)

        async def chunks() -> Any:
            yield body

        stored = await store.put(
            session.account_id, data.name, content_type, chunks(), max_bytes=len(body)
        )
        file = StoredFile(stored.key, data.name, content_type, stored.size, stored.sha256)
        inbound = InboundMessage(
            provider_message_id=self._provider_id(session, data.client_id),
            sender=Sender(CHANNEL, session.address, session.name),
            content=None,
            attachments=(
                Attachment(
                    url=file.url, content_type=content_type, filename=data.name, size=file.size
                ),
            ),
            files=(file,),
        )
        try:
            answer = await self._ingest(sid, session, policy, inbound)
        except BaseException:
            await store.delete(stored.key)  # no message holds it
            raise
        if answer.get("duplicate"):
            await store.delete(stored.key)  # the first upload's message keeps its own copy
        return answer

    @call(RateIn, "invalid_rating", "send {conversation_id, rating: 1-5, comment?}")
    async def on_rate(self, sid: str, data: RateIn) -> dict[str, Any]:
        """The visitor's rating (CSAT) of its resolved conversation, once."""
        session = await self._limited_session(sid)
        if session.contact_id is None:
            raise Refused("not_found", "no such conversation")
        try:
            await in_transaction(
                self._hub.pool,
                rate_conversation,
                account_id=session.account_id,
                contact_id=session.contact_id,
                conversation_id=data.conversation_id,
                rating=data.rating,
                comment=data.comment,
            )
        except RatingRefused as exc:
            raise Refused(exc.code, exc.message) from exc
        return {"ok": True}

    @call(TypingIn, "invalid_typing", 'send {"on": true|false}')
    async def on_typing(self, sid: str, data: TypingIn) -> dict[str, Any]:
        """Shown to the agents viewing the visitor's conversation."""
        session = await self._limited_session(sid)
        visitor = self._streams.visitor(session.account_id, sid)
        # the newest conversation is the one the visitor writes in (ids sort by time)
        for conversation in (
            [max(visitor.conversations)] if visitor and visitor.conversations else []
        ):
            await self.server.emit(
                "typing",
                {
                    "conversation_id": conversation,
                    "agent_id": None,
                    "contact_id": session.contact_id,
                    "name": session.name,
                    "on": data.on,
                },
                room=f"conversation:{conversation}",
                namespace="/agent",
            )
        return {"ok": True}


def attach_widget(
    sio: socketio.AsyncServer, hub: Hub, hooks: WidgetHooks, emit: Any
) -> tuple[WidgetNamespace, VisitorStreams]:
    """The ``/widget`` namespace on the agents' Socket.IO server."""
    streams = VisitorStreams(hub.pool, emit)
    namespace = WidgetNamespace(hub, hooks, streams)
    sio.register_namespace(namespace)
    return namespace, streams
