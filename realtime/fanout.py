"""Encode-once fan-out: one WebSocket frame, the same bytes written to every recipient.

python-socketio encodes an emit once but then wakes a writer task per recipient, and aiohttp
builds a frame per recipient. For a busy account that is thousands of task switches per event. A
server-to-client WebSocket frame is not masked, so with per-message compression off (we refuse it)
the frame is identical for every client: :class:`Fanout` builds it once and writes it straight to
each socket's transport.

Order per socket is kept by routing Engine.IO's own writes (handshake, pings, acks, other emits)
through the same synchronous frame writer (:class:`_SharedFrameSocket`). A frame is written
directly only while the socket's Engine.IO writer is parked in ``queue.get()`` with the queue empty:
the writer writes everything it takes without yielding, so parked means all earlier packets are on
the transport. An empty queue alone is not enough: on Python 3.11 ``wait_for`` runs ``get()`` in
its own task, which takes a packet off the queue a loop iteration or two before the writer writes
it. Otherwise the frame joins the queue, behind the earlier packets.

A socket whose transport buffer holds more than ``max_buffer`` bytes is a client that stopped
reading: it is cut off (the connection aborted, freeing the buffer) instead of growing without
bound, and replays what it missed from its last sequence when it reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Sequence
from typing import Any

import socketio
from aiohttp.web import WebSocketResponse
from engineio import packet as eio_packet
from engineio.async_drivers.aiohttp import WebSocket as _EngineWebSocket

from hub.metrics import REALTIME_SLOW_CUTOFFS

log = logging.getLogger(__name__)

_MAX_QUEUED = 1024  # packets waiting for a long-polling client
_HEAD = struct.Struct("!BB")
_HEAD16 = struct.Struct("!BBH")
_HEAD64 = struct.Struct("!BBQ")


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final WebSocket text frame (RFC 6455 §5.2)."""
    size = len(payload)
    if size < 126:
        return _HEAD.pack(0x81, size) + payload
    if size < 65536:
        return _HEAD16.pack(0x81, 126, size) + payload
    return _HEAD64.pack(0x81, 127, size) + payload


class _SharedFrameSocket(_EngineWebSocket):  # type: ignore[misc]  # untyped library
    """Engine.IO's aiohttp WebSocket with compression off and synchronous sends, remembered on
    the Engine.IO socket it serves so :class:`Fanout` can write to its transport."""

    async def __call__(self, environ: dict[str, Any]) -> WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=False
        )
        await self._sock.prepare(request)
        self.environ = environ
        engine_socket = self.handler.__self__  # the bound AsyncSocket._websocket_handler
        engine_socket.hub_transport = request.transport
        try:
            await self.handler(self)
        finally:
            engine_socket.hub_transport = None
        return self._sock

    async def send(self, message: str | bytes) -> None:
        transport = self.environ["aiohttp.request"].transport
        if isinstance(message, bytes) or transport is None or transport.is_closing():
            await super().send(message)  # binary (unused here) or closing: aiohttp's own path
            return
        transport.write(text_frame(message.encode()))


def _writer_idle(queue: asyncio.Queue[Any]) -> bool:
    """Nothing queued and the writer waiting for more (so nothing taken and not yet written)."""
    return queue.empty() and bool(queue._getters)  # type: ignore[attr-defined]


def use_shared_frames(sio: socketio.AsyncServer) -> None:
    """Make ``sio``'s WebSocket connections writable by :class:`Fanout` (before any connect)."""
    sio.eio._async = {**sio.eio._async, "websocket": _SharedFrameSocket}


class Fanout:
    def __init__(self, sio: socketio.AsyncServer, namespace: str, max_buffer: int) -> None:
        self._sio = sio
        self._namespace = namespace
        self._prefix = f"42{namespace},[".encode()
        self._max_buffer = max_buffer
        self.cut_off = 0

    def frame_text(self, event: str, data: bytes) -> bytes:
        """The Engine.IO message carrying Socket.IO ``[event, data]`` for the namespace."""
        return self._prefix + b'"' + event.encode() + b'",' + data + b"]"

    async def send(self, sids: Sequence[str], event: str, data: bytes) -> None:
        """Send ``event`` with ``data`` (already JSON) to ``sids``, encoded once."""
        text = self.frame_text(event, data)
        frame = text_frame(text)
        manager = self._sio.manager
        sockets = self._sio.eio.sockets
        queued: list[tuple[str, Any]] = []
        for sid in sids:
            engine = sockets.get(manager.eio_sid_from_sid(sid, self._namespace))
            if engine is None or engine.closed:
                continue
            transport = getattr(engine, "hub_transport", None)
            if transport is None or not _writer_idle(engine.queue):
                queued.append((sid, engine))  # long-polling, or earlier packets not yet written
                continue
            if transport.is_closing():
                continue
            if transport.get_write_buffer_size() > self._max_buffer:
                self._cut_off(sid, transport)
                continue
            transport.write(frame)
        if queued:
            pkt = eio_packet.Packet(eio_packet.MESSAGE, text[1:].decode())
            for sid, engine in queued:
                if engine.queue.qsize() > _MAX_QUEUED:  # a long-polling client that stopped polling
                    self.cut_off += 1
                    REALTIME_SLOW_CUTOFFS.inc()
                    await self._sio.disconnect(sid, namespace=self._namespace)
                    continue
                await engine.send(pkt)

    def _cut_off(self, sid: str, transport: asyncio.WriteTransport) -> None:
        self.cut_off += 1
        REALTIME_SLOW_CUTOFFS.inc()
        log.warning(
            "agent socket cut off: it stopped reading",
            extra={"sid": sid, "buffered": transport.get_write_buffer_size()},
        )
        transport.abort()  # the reader sees the close; on_disconnect cleans up
