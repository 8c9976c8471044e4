"""Limits on what a client can hold of the gateway: connections, and time.

- Connections per client address (``max_connections_per_address``; trusted proxies excepted) and
  in all (``max_connections``, by default the descriptor limit less a reserve): one more is
  answered 429 (or 503) with ``Retry-After`` and closed, before anything is read from it.
- A request head must be complete within ``http_idle_timeout`` of the connection's opening or of
  its previous response (aiohttp's keep-alive timer, which also closes idle connections): an idle
  or slowly sent head (slowloris) holds a connection only that long.
- A request body may not stall for more than ``http_body_timeout``, nor take more than
  ``http_body_deadline`` in all from the end of its head (a body trickled a byte at a time never
  stalls, yet would hold the connection for hours): the request gets 408.

aiohttp has no hook for accepted connections, so :class:`LimitedApplication` (an
:class:`aiohttp.web.Application`) puts the connection caps on the low-level server it makes for
its runner; ``hub serve`` needs no change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway.responses import ApiError, error_response
from hub.metrics import BODY_TIMEOUTS, CONNECTIONS_REFUSED, OPEN_CONNECTIONS

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: descriptors kept free of client connections (database pool, Redis, Kafka, media files, logs)
FD_RESERVE = 256


def total_cap(configured: int) -> int:
    if configured > 0:
        return configured
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(64, soft - FD_RESERVE) if soft != resource.RLIM_INFINITY else 0


def _refusal(status: int, reason: str, code: str, message: str) -> bytes:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Retry-After: 1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


TOO_MANY_FROM_ADDRESS = _refusal(
    429, "Too Many Requests", "too_many_connections", "too many connections from this address"
)
TOO_MANY_IN_ALL = _refusal(
    503, "Service Unavailable", "too_many_connections", "the server holds too many connections"
)


class ConnectionCaps:
    """Counts open connections per peer address and in all; refuses those over a cap."""

    def __init__(self, per_address: int, total: int, exempt: frozenset[str]) -> None:
        self.per_address = per_address
        self.total = total
        self.exempt = exempt
        self.counts: Counter[str] = Counter()
        self.open = 0
        self._peers: dict[RequestHandler, str] = {}

    def admit(self, handler: RequestHandler, transport: asyncio.Transport) -> bool:
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        refusal = None
        if self.total and self.open >= self.total:
            refusal, reason = TOO_MANY_IN_ALL, "total"
        elif self.per_address and host not in self.exempt and self.counts[host] >= self.per_address:
            refusal, reason = TOO_MANY_FROM_ADDRESS, "per_address"
        if refusal is not None:
            CONNECTIONS_REFUSED.labels(reason).inc()
            # closed on the next turn of the loop, once the handler has started its request loop:
            # closed at once, the handler's loop would start on a torn-down connection and
            # fail an assertion inside aiohttp (an unhandled error per refused connection)
            try:
                asyncio.get_running_loop().call_soon(_refuse, transport, refusal)
            except RuntimeError:  # no loop: no handler to start either
                _refuse(transport, refusal)
            return False
        self.counts[host] += 1
        self.open += 1
        self._peers[handler] = host
        OPEN_CONNECTIONS.set(self.open)
        return True

    def release(self, handler: RequestHandler) -> None:
        host = self._peers.pop(handler, None)
        if host is None:
            return
        self.open -= 1
        self.counts[host] -= 1
        if self.counts[host] <= 0:
            del self.counts[host]
        OPEN_CONNECTIONS.set(self.open)


def _refuse(transport: asyncio.Transport, refusal: bytes) -> None:
    with contextlib.suppress(Exception):
        transport.write(refusal)
        transport.close()


def guard_server(server: web.Server, caps: ConnectionCaps) -> web.Server:
    """Route the server's connection bookkeeping through ``caps``."""
    made = server.connection_made
    lost = server.connection_lost

    def connection_made(handler: RequestHandler, transport: asyncio.Transport) -> None:
        made(handler, transport)
        caps.admit(handler, transport)

    def connection_lost(handler: RequestHandler, exc: BaseException | None = None) -> None:
        caps.release(handler)
        lost(handler, exc)

    server.connection_made = connection_made  # type: ignore[method-assign]
    server.connection_lost = connection_lost  # type: ignore[method-assign]
    return server


with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # aiohttp discourages subclasses

    class LimitedApplication(web.Application):
        """An application whose runner's server refuses connections over the caps."""

        def __init__(self, *, caps: ConnectionCaps | None = None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.caps = caps

        def _make_handler(self, *args: Any, **kwargs: Any) -> web.Server:
            server = super()._make_handler(*args, **kwargs)
            return guard_server(server, self.caps) if self.caps is not None else server


class BodyStalled(TimeoutError):
    """The body stopped arriving, or is arriving too slowly to finish in time.

    A ``TimeoutError``: once the middleware has answered 408, aiohttp drains what is left of the
    body and treats a timeout there as the end of the connection; any other exception it would
    log as unhandled."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def _watch_body(request: web.Request, stall: float, deadline: float) -> None:
    content = request.content
    loop = asyncio.get_running_loop()
    seen, since = content.total_bytes, loop.time()
    give_up = since + deadline
    step = min(1.0, stall / 4, deadline / 4)
    while not content.is_eof():
        await asyncio.sleep(step)
        now = loop.time()
        if content.is_eof():
            return
        if now >= give_up:
            content.set_exception(BodyStalled(f"the body took longer than {deadline:g} s"))
            return
        if content.total_bytes != seen:
            seen, since = content.total_bytes, now
        elif now - since >= stall:
            content.set_exception(BodyStalled(f"the body stalled for {stall:g} s"))
            return


async def within_body_time(
    request: web.Request, handler: Handler, stall: float, deadline: float
) -> web.StreamResponse:
    """408 for a request whose body stops arriving or trickles in too slowly (a slow-body attack
    or a dead client). Called by the gateway's middleware around the handler."""
    if not request.body_exists or request.content.is_eof():
        return await handler(request)  # no body, or all of it came with the head
    watch = asyncio.create_task(_watch_body(request, stall, deadline))
    try:
        return await handler(request)
    except BodyStalled as exc:
        BODY_TIMEOUTS.inc()
        log.warning("request body too slow", extra={"path": request.path, "reason": exc.message})
        response = error_response(ApiError(408, "body_timeout", exc.message))
        response.force_close()
        return response
    finally:
        watch.cancel()
