"""Bearer-token authentication for ``/api``. Tokens are looked up by their SHA-256 hash and the
result is cached briefly, so a busy integration does not cost a database write per request."""

from __future__ import annotations

import hmac
import time

from aiohttp import web

from gateway.responses import ApiError
from hub.actions.setup import hash_token
from hub.app import Hub
from hub.store.reads import Principal, principal_for_token

_TTL = 30.0


class TokenAuth:
    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._cache: dict[bytes, tuple[float, Principal | None]] = {}

    async def principal(self, request: web.Request) -> Principal:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "unauthenticated",
                "send Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        found = await self.for_token(token.strip())
        if found is None:
            raise ApiError(
                401,
                "invalid_token",
                "the token is unknown or revoked",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return found

    async def for_token(self, token: str) -> Principal | None:
        """The caller a bearer token stands for, or None; REST and sockets both ask here."""
        bootstrap = self._hub.config.bootstrap_token
        if bootstrap and hmac.compare_digest(token.encode(), bootstrap.encode()):
            return Principal(self._hub.account_id, "administrator", None)
        digest = hash_token(token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            found = cached[1]
        else:
            found = await principal_for_token(self._hub.pool, digest)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + (_TTL if found else 2.0), found)
        return found
