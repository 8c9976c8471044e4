"""The Socket.IO server for agents: namespace ``/agent`` on the gateway's aiohttp app.

Connect with ``auth={"token": "<bearer token>", "last_seq": <int, optional>}``. Without
``last_seq`` the stream starts at the newest event; with it, everything after that sequence is sent
first, in order, then live events. If ``last_seq`` is older than the replay log keeps (or newer than
the log knows), the server sends ``resync`` with the current head: reload over REST, then continue
from that head. Events arrive in ``events`` batches of ``{"seq", "type", "event", "context"}``. See
docs/realtime.md.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import msgspec
import socketio
from aiohttp import web

from hub.actions.messages import MessageRefused, create_agent_message
from hub.actions.presence import record_presence, shown_present
from hub.actions.reads import mark_read
from hub.app import DB_UNAVAILABLE, Hub
from hub.auth.callers import Authenticator
from hub.authz import Denied, Permission, Principal, authorize
from hub.contracts.presence import STATUSES
from hub.fields import ClientId, Content, RecordId
from hub.store import values
from hub.store.db import in_transaction
from hub.store.reads import conversation_exists
from realtime.cluster import Cluster
from realtime.fanout import Fanout, use_shared_frames
from realtime.log import bounds
from realtime.part import Live
from realtime.streams import Streams
from realtime.widget.hooks import WidgetHooks
from realtime.widget.namespace import NAMESPACE as WIDGET
from realtime.widget.namespace import attach_widget

log = logging.getLogger(__name__)
T = TypeVar("T")
NAMESPACE = "/agent"
RECHECK_S = 30.0  # how soon a revocation made by another gateway reaches this one's sockets


def _refused(code: str, message: str) -> Exception:
    """A connect refusal: clients see ``message`` and ``data = {"code", "message"}``."""
    error: Exception = socketio.exceptions.ConnectionRefusedError(
        message, {"code": code, "message": message}
    )
    return error


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


# What each event takes: the field types of the REST routes (RecordId, Content, ClientId), so a
# value the API refuses is refused here too. Unknown fields are ignored, as before.


class ConversationIn(msgspec.Struct):
    conversation_id: RecordId


class SendIn(msgspec.Struct):
    conversation_id: RecordId
    content: Content
    private: bool = False
    client_id: ClientId | None = None


class ReadIn(msgspec.Struct):
    conversation_id: RecordId
    message_id: RecordId | None = None


class TypingIn(msgspec.Struct):
    conversation_id: RecordId
    on: bool


class PresenceIn(msgspec.Struct):
    status: Literal["online", "busy", "offline"]


S = TypeVar("S", bound=msgspec.Struct)
Handler = Callable[[Any, str, Any], Awaitable[dict[str, Any]]]
_MAX_DEPTH = 16


def _storable(data: Any, depth: int = 0) -> bool:
    """No NUL or lone surrogate anywhere (a Socket.IO payload is decoded by a JSON parser that
    lets lone surrogates through; msgspec patterns do not look for them), not nested deeper
    than anything an event takes."""
    if depth > _MAX_DEPTH:
        return False
    if isinstance(data, str):
        try:
            values.text(data, "value", max_chars=len(data))
        except values.Unstorable:
            return False
        return True
    if isinstance(data, dict):
        return all(_storable(k, depth + 1) and _storable(v, depth + 1) for k, v in data.items())
    if isinstance(data, list):
        return all(_storable(v, depth + 1) for v in data)
    return True


def _parse(data: Any, kind: type[S]) -> S | str:
    """``data`` as ``kind``, or why not."""
    if not isinstance(data, dict):
        return "send an object"
    if not _storable(data):
        return "values must not contain NUL characters or lone surrogates"
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        return str(exc)


def event(
    kind: type[S], code: str, usage: str
) -> Callable[[Callable[[Any, str, S], Awaitable[dict[str, Any]]]], Handler]:
    """An event handler that always acks: ``data`` parsed as ``kind`` (else ``code``, with
    ``usage`` and the reason), and anything unforeseen answered ``internal_error`` (and logged)
    rather than left as an unretrieved task exception and a client waiting for its ack."""

    def wrap(handler: Callable[[Any, str, S], Awaitable[dict[str, Any]]]) -> Handler:
        @functools.wraps(handler)
        async def handle(self: Any, sid: str, data: Any = None) -> dict[str, Any]:
            parsed = _parse(data, kind)
            if isinstance(parsed, str):
                return _error(code, f"{usage}: {parsed}")
            try:
                return await handler(self, sid, parsed)
            except DB_UNAVAILABLE:
                return _error("unavailable", "the database is unreachable: try again")
            except Exception:
                log.exception("agent socket event failed", extra={"sid": sid})
                return _error("internal_error", "internal error")

        return handle

    return wrap


class AgentNamespace(socketio.AsyncNamespace):  # type: ignore[misc]  # untyped library
    def __init__(self, hub: Hub, auth: Authenticator, streams: Streams, cluster: Cluster) -> None:
        super().__init__(NAMESPACE)
        self._hub = hub
        self._auth = auth
        self._streams = streams
        self._cluster = cluster
        self._credentials: dict[str, tuple[str, Principal]] = {}  # sid -> token, principal
        self._recheck_task: asyncio.Task[None] | None = None
        self._recheck_again = False

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            raise _refused("unauthenticated", 'connect with auth={"token": "<token>"}')
        principal = await self._auth.for_token(token)
        if principal is None:
            raise _refused("invalid_token", "the token is unknown, expired or revoked")
        try:  # the same check the REST routes run
            authorize(principal, Permission.CONVERSATIONS_READ)
        except Denied as exc:
            raise _refused(exc.code, exc.message) from exc
        last_seq = auth.get("last_seq")
        if last_seq is not None and (
            isinstance(last_seq, bool) or not isinstance(last_seq, int) or last_seq < 0
        ):
            raise _refused("invalid_last_seq", "last_seq must be a whole number >= 0")
        low, high = await bounds(self._hub.pool, principal.account_id)
        resync = last_seq is not None and (last_seq > high or last_seq < low - 1)
        cursor = high if last_seq is None or resync else last_seq
        account_id, agent_id = principal.account_id, principal.agent_id
        await self.save_session(sid, {"principal": principal})
        self._credentials[sid] = (token, principal)
        await self.enter_room(sid, f"account:{account_id}")
        if await self._cluster.connected(account_id, agent_id, sid):
            await self.announce(account_id, agent_id)
        await self.emit("presence_list", await self._cluster.of_account(account_id), to=sid)
        self._streams.add(account_id, sid, cursor, high, resync, principal.inboxes)
        log.info(
            "agent socket connected",
            extra={
                "sid": sid,
                "account_id": principal.account_id,
                "cursor": cursor,
                "resync": resync,
            },
        )

    async def _principal(self, sid: str) -> Principal:
        principal: Principal = (await self.get_session(sid))["principal"]
        return principal

    async def _act(self, who: Principal, action: Callable[..., Awaitable[T]], **kw: Any) -> T:
        """Run a hub action as this agent, in one transaction, limited to its inboxes (the same
        actions, and the same permission check, as the REST API)."""
        try:
            authorize(who, Permission.CONVERSATIONS_WRITE)
        except Denied as exc:
            raise MessageRefused(exc.code, exc.message) from exc
        return await in_transaction(
            self._hub.pool,
            action,
            account_id=who.account_id,
            agent_id=who.agent_id,
            inboxes=who.inboxes,
            **kw,
        )

    def recheck_soon(self) -> None:
        """Re-check every socket's credentials (after a logout, revocation, role or membership
        change in this process; and periodically, for changes made by other processes)."""
        if self._recheck_task is None or self._recheck_task.done():
            self._recheck_task = asyncio.create_task(self.recheck(), name="socket-recheck")
        else:
            self._recheck_again = True

    async def recheck(self) -> None:
        while True:
            self._recheck_again = False
            by_token: dict[str, list[str]] = {}
            for sid, (token, _) in list(self._credentials.items()):
                by_token.setdefault(token, []).append(sid)
            for token, sids in by_token.items():
                try:
                    now = await self._auth.still_valid(token)
                except DB_UNAVAILABLE:
                    return  # keep sockets while the database is away; the next round decides
                for sid in sids:
                    known = self._credentials.get(sid)
                    if known is None or now == known[1]:
                        continue
                    # revoked, or its role or inboxes changed: the client reconnects (with a new
                    # token if it has one) and replays what it missed under its new scope
                    log.info("agent socket credentials changed", extra={"sid": sid})
                    self._credentials.pop(sid, None)
                    await self.disconnect(sid)
            if not self._recheck_again:
                return

    async def recheck_periodically(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.recheck_soon()

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self._credentials.pop(sid, None)
        who = await self._principal(sid)
        self._streams.remove(who.account_id, sid)
        if await self._cluster.disconnected(who.account_id, who.agent_id, sid):
            await self.announce(who.account_id, who.agent_id)

    async def announce(self, account_id: str, agent_id: str) -> None:
        """Tell the account's sockets in every process an agent's status, and record it
        (``agent.presence_changed`` when it changed: once per change, whichever process saw
        it)."""
        await self.record(account_id, agent_id)
        status = await self._cluster.status(account_id, agent_id)
        await self.emit(
            "presence", {"agent_id": agent_id, "status": status}, room=f"account:{account_id}"
        )

    async def announce_swept(self, account_id: str, agent_id: str) -> None:
        """An agent gone offline because its process vanished: the hub, not the agent, did it."""
        await self.record(account_id, agent_id, by_system=True)
        await self.announce(account_id, agent_id)

    async def record(self, account_id: str, agent_id: str, *, by_system: bool = False) -> None:
        """Record the agent's current status; a database outage loses this change (logged): the
        next change records the status as it then is."""
        try:
            await in_transaction(
                self._hub.pool,
                record_presence,
                account_id=account_id,
                agent_id=agent_id,
                current=lambda: self._cluster.status(account_id, agent_id),
                by_system=by_system,
            )
        except DB_UNAVAILABLE as exc:
            log.warning(
                "agent presence not recorded",
                extra={"account_id": account_id, "agent_id": agent_id, "error": repr(exc)},
            )

    async def settle_stale(self) -> None:
        """At start: record offline for agents still recorded online or busy that no live process
        holds (a hub that crashed with agents connected wrote no offline); their time online ends
        here, at the restart. Each is checked under its row's lock, so an agent connecting
        meanwhile is not recorded offline."""
        try:
            async with self._hub.pool.acquire() as conn:
                stale = await shown_present(conn)
        except DB_UNAVAILABLE as exc:
            log.warning("stale agent presence not settled", extra={"error": repr(exc)})
            return
        settled = 0
        for account_id, agent_id in stale:
            if await self._cluster.status(account_id, agent_id) != "offline":
                continue
            await self.record(account_id, agent_id, by_system=True)
            settled += 1
        if settled:
            log.info("agents recorded offline after a restart", extra={"agents": settled})

    @event(PresenceIn, "invalid_status", f"send {{status: {' | '.join(STATUSES)}}}")
    async def on_presence(self, sid: str, data: PresenceIn) -> dict[str, Any]:
        """``{"status": "online" | "busy" | "offline"}``; everyone in the account is told."""
        who = await self._principal(sid)
        await self._cluster.set_status(who.account_id, who.agent_id, data.status)
        await self.announce(who.account_id, who.agent_id)
        return {"ok": True, "status": data.status}

    @event(ConversationIn, "invalid_conversation", "send {conversation_id}")
    async def on_join(self, sid: str, data: ConversationIn) -> dict[str, Any]:
        """Start viewing a conversation: typing in it reaches this socket."""
        who = await self._principal(sid)
        conversation_id = data.conversation_id
        if not await conversation_exists(self._hub.pool, who, conversation_id):
            return _error("not_found", "no such conversation")
        await self.enter_room(sid, f"conversation:{conversation_id}")
        return {"ok": True}

    @event(ConversationIn, "invalid_conversation", "send {conversation_id}")
    async def on_leave(self, sid: str, data: ConversationIn) -> dict[str, Any]:
        await self.leave_room(sid, f"conversation:{data.conversation_id}")
        return {"ok": True}

    @event(SendIn, "invalid_message", "send {conversation_id, content, private?, client_id?}")
    async def on_send_message(self, sid: str, data: SendIn) -> dict[str, Any]:
        """``{"conversation_id", "content", "private"?, "client_id"?}``: the same action as
        ``POST /api/v1/conversations/{id}/messages``; retry with the same ``client_id``."""
        who = await self._principal(sid)
        try:
            sent = await self._act(
                who,
                create_agent_message,
                conversation_id=data.conversation_id,
                content=data.content,
                private=data.private,
                client_id=data.client_id,
                enforce_reply_window=True,
            )
        except MessageRefused as exc:
            return _error(exc.code, exc.message)
        return {"ok": True, "id": sent.id, "status": sent.status, "duplicate": sent.duplicate}

    @event(ReadIn, "invalid_read", "send {conversation_id, message_id?}")
    async def on_mark_read(self, sid: str, data: ReadIn) -> dict[str, Any]:
        """``{"conversation_id", "message_id"?}``: read up to that message, or the newest."""
        who = await self._principal(sid)
        try:
            position = await self._act(
                who, mark_read, conversation_id=data.conversation_id, message_id=data.message_id
            )
        except MessageRefused as exc:
            return _error(exc.code, exc.message)
        return {
            "ok": True,
            "last_read_message_id": position.last_read_message_id,
            "changed": position.changed,
        }

    @event(TypingIn, "invalid_typing", 'send {"conversation_id": "...", "on": true|false}')
    async def on_typing(self, sid: str, data: TypingIn) -> dict[str, Any]:
        """``{"conversation_id", "on": bool}`` to the other agents viewing the conversation."""
        who = await self._principal(sid)
        room = f"conversation:{data.conversation_id}"
        if room not in self.rooms(sid):
            return _error("not_joined", "join the conversation first")
        await self.emit(
            "typing",
            {"conversation_id": data.conversation_id, "agent_id": who.agent_id, "on": data.on},
            room=room,
            skip_sid=sid,
        )
        self._hub.typing.agent_typing(who.account_id, data.conversation_id, data.on)
        # and to the web chat visitor of the conversation, without saying which agent
        await self.server.emit("typing", {"on": data.on}, room=room, namespace=WIDGET)
        return {"ok": True}


def limit_handshake(sio: socketio.AsyncServer, timeout: float) -> None:
    """Close an Engine.IO connection that has joined neither ``/agent`` nor ``/widget`` within
    ``timeout`` seconds:
    a socket answering pings but never authenticating would otherwise be held forever."""
    eio_connect = sio.eio.handlers["connect"]
    pending: set[asyncio.Task[None]] = set()

    async def drop_if_not_joined(eio_sid: str, environ: dict[str, Any]) -> None:
        if eio_sid in sio.eio.sockets and all(
            sio.manager.sid_from_eio_sid(eio_sid, ns) is None for ns in (NAMESPACE, WIDGET)
        ):
            log.info("agent socket closed: no authenticated connect in time")
            await sio.eio.disconnect(eio_sid)
            # a client ignoring the close packet would hold the connection until the ping timeout
            request = environ.get("aiohttp.request")
            if isinstance(request, web.BaseRequest) and request.transport is not None:
                request.transport.close()

    def check(eio_sid: str, environ: dict[str, Any]) -> None:
        task = asyncio.create_task(drop_if_not_joined(eio_sid, environ))
        pending.add(task)
        task.add_done_callback(pending.discard)

    async def connect_with_deadline(eio_sid: str, environ: dict[str, Any]) -> Any:
        asyncio.get_running_loop().call_later(timeout, check, eio_sid, environ)
        return await eio_connect(eio_sid, environ)

    sio.eio.on("connect", connect_with_deadline)


def attach_realtime(
    app: web.Application, hub: Hub, live: Live, widget: WidgetHooks | None = None
) -> Streams:
    """Socket.IO at ``/socket.io/``, namespace ``/agent``, woken by ``live``'s cluster; with
    ``widget``, also the web chat visitors' namespace ``/widget``."""
    auth = hub.callers
    # with Redis, emits to rooms (presence, typing) reach the sockets of every process
    manager = (
        socketio.AsyncRedisManager(hub.config.redis_url, channel="hub:socketio")
        if hub.config.redis_url
        else None
    )
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=manager,
        logger=False,
        engineio_logger=False,
        cors_allowed_origins=[],
        # a web chat visitor's file arrives as one packet, base64 (the inbox caps it lower)
        max_http_buffer_size=14 * 1024 * 1024 if widget else 1_000_000,
    )

    use_shared_frames(sio)
    limit_handshake(sio, hub.config.realtime_handshake_timeout)
    fanout = Fanout(sio, NAMESPACE, max_buffer=hub.config.realtime_socket_buffer_kib * 1024)
    streams = Streams(hub.pool, fanout.send)
    namespace = AgentNamespace(hub, auth, streams, live.cluster)
    sio.register_namespace(namespace)
    sio.attach(app)
    live.logged_listeners.append(streams.notify)
    live.committed_listeners.append(streams.feed)
    live.offline_listeners.append(namespace.announce_swept)
    auth.on_forget.append(namespace.recheck_soon)
    visitors = None
    if widget is not None:
        widget_fanout = Fanout(sio, WIDGET, max_buffer=hub.config.realtime_socket_buffer_kib * 1024)
        _, visitors = attach_widget(sio, hub, widget, widget_fanout.send)
        live.logged_listeners.append(visitors.notify)
        # the log's writer hands over what it committed (``Live.committed_listeners``); the
        # visitors' streams read the log, so a commit only wakes them
        live.committed_listeners.append(lambda logged: visitors.notify(set(logged)))
    periodic: list[asyncio.Task[None]] = []

    async def start_rechecks(_: web.Application) -> None:
        periodic.append(asyncio.create_task(namespace.recheck_periodically(RECHECK_S)))
        periodic.append(asyncio.create_task(namespace.settle_stale(), name="presence-settle"))

    async def close_streams(_: web.Application) -> None:
        for task in periodic:
            task.cancel()
        await streams.close()
        if visitors is not None:
            await visitors.close()

    app.on_startup.append(start_rechecks)

    app.on_shutdown.append(close_streams)
    return streams
