"""What the widget needs from other parts, handed over by the composition root (realtime imports
no other part): the web chat channel's reading of an inbox's settings, the gateway's rate
buckets and client address, and automation's business hours."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from hub.contracts.channel import InboxContext


class WidgetPolicy(Protocol):
    """One web chat inbox's rules (``channels.webchat.WebchatPolicy`` has these fields)."""

    @property
    def inbox(self) -> InboxContext: ...
    @property
    def identity_secret(self) -> str: ...
    @property
    def allowed_origins(self) -> frozenset[str]: ...
    @property
    def prechat(self) -> tuple[tuple[str, bool], ...]: ...
    @property
    def visitor_per_minute(self) -> int: ...
    @property
    def ip_per_minute(self) -> int: ...
    @property
    def max_open_conversations(self) -> int: ...
    @property
    def upload_max_bytes(self) -> int: ...
    @property
    def upload_types(self) -> frozenset[str]: ...
    @property
    def require_identity(self) -> bool: ...


async def _always_open(inbox: InboxContext) -> bool:
    return True


async def _no_limit(key: str, rate: float, burst: float) -> float:
    return 0.0


def _peer(request: web.Request) -> str:
    return request.remote or "unknown"


@dataclasses.dataclass(frozen=True)
class WidgetHooks:
    #: the inbox's policy, ``None`` when it is no usable web chat inbox (every visitor refused)
    policy_of: Callable[[InboxContext], WidgetPolicy | None]
    #: a token bucket: seconds to wait before ``key`` may act again (0: it may now)
    take: Callable[[str, float, float], Awaitable[float]] = _no_limit
    #: the visitor's address (behind trusted proxies, the address they forwarded)
    client_address: Callable[[web.Request], str] = _peer
    #: whether the inbox's business hours say it is open now
    open_now: Callable[[InboxContext], Awaitable[bool]] = _always_open
