"""The Socket.IO server for agents: namespace ``/agent`` on the gateway's aiohttp app.

Connect with ``auth={"token": "<bearer token>", "last_seq": <int, optional>}``. Without
``last_seq`` the stream starts at the newest event; with it, everything after that sequence is sent
first, in order, then live events. If ``last_seq`` is older than the replay log keeps (or newer than
the log knows), the server sends ``resync`` with the current head: reload over REST, then continue
from that head. Events arrive as ``event`` with ``{"seq", "type", "event"}``. See docs/realtime.md.
"""

from __future__ import annotations

import logging
from typing import Any

import socketio
from aiohttp import web

from gateway.auth import TokenAuth
from hub.app import Hub
from realtime.log import bounds
from realtime.streams import Streams

log = logging.getLogger(__name__)
NAMESPACE = "/agent"


def _refused(code: str, message: str) -> Exception:
    """A connect refusal: clients see ``message`` and ``data = {"code", "message"}``."""
    error: Exception = socketio.exceptions.ConnectionRefusedError(
        message, {"code": code, "message": message}
    )
    return error


class AgentNamespace(socketio.AsyncNamespace):  # type: ignore[misc]  # untyped library
    def __init__(self, hub: Hub, auth: TokenAuth, streams: Streams) -> None:
        super().__init__(NAMESPACE)
        self._hub = hub
        self._auth = auth
        self._streams = streams

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            raise _refused("unauthenticated", 'connect with auth={"token": "<token>"}')
        principal = await self._auth.for_token(token)
        if principal is None:
            raise _refused("invalid_token", "the token is unknown or revoked")
        last_seq = auth.get("last_seq")
        if last_seq is not None and (
            isinstance(last_seq, bool) or not isinstance(last_seq, int) or last_seq < 0
        ):
            raise _refused("invalid_last_seq", "last_seq must be a whole number >= 0")
        low, high = await bounds(self._hub.pool, principal.account_id)
        resync = last_seq is not None and (last_seq > high or last_seq < low - 1)
        cursor = high if last_seq is None or resync else last_seq
        await self.save_session(sid, {"account_id": principal.account_id})
        self._streams.add(principal.account_id, sid, cursor, resync)
        log.info(
            "agent socket connected",
            extra={
                "sid": sid,
                "account_id": principal.account_id,
                "cursor": cursor,
                "resync": resync,
            },
        )

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        session = await self.get_session(sid)
        self._streams.remove(session["account_id"], sid)


def attach_realtime(app: web.Application, hub: Hub, auth: TokenAuth) -> Streams:
    sio = socketio.AsyncServer(
        async_mode="aiohttp", logger=False, engineio_logger=False, cors_allowed_origins=[]
    )

    async def emit(sid: str, event: str, data: dict[str, Any]) -> None:
        await sio.emit(event, data, to=sid, namespace=NAMESPACE)

    streams = Streams(hub.pool, emit)
    sio.register_namespace(AgentNamespace(hub, auth, streams))
    sio.attach(app)
    hub.realtime_listeners.append(streams.notify)

    async def close_streams(_: web.Application) -> None:
        await streams.close()

    app.on_shutdown.append(close_streams)
    return streams
