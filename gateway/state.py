"""What the gateway's handlers share, under one typed application key."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from gateway.inbox_cache import InboxCache
from gateway.ratelimit import RateLimits
from hub.app import Hub
from hub.auth.callers import Authenticator


@dataclasses.dataclass(frozen=True)
class GatewayState:
    hub: Hub
    auth: Authenticator
    inboxes: InboxCache
    limits: RateLimits
    trusted_proxies: frozenset[str] = frozenset()

    def client_address(self, request: web.Request) -> str:
        """The caller's address; behind a trusted proxy, the last hop it appended."""
        remote = request.remote or "unknown"
        if remote in self.trusted_proxies:
            forwarded = request.headers.get("X-Forwarded-For", "")
            hops = [h.strip() for h in forwarded.split(",") if h.strip()]
            if hops:
                return hops[-1][:64]
        return remote

    def is_https(self, request: web.Request) -> bool:
        if request.secure:
            return True
        return (request.remote or "") in self.trusted_proxies and (
            request.headers.get("X-Forwarded-Proto", "").lower() == "https"
        )


STATE = web.AppKey("state", GatewayState)
