"""Who is calling, for every door (REST, agent sockets): a login's access token (JWT) or an API
token, resolved to a :class:`~hub.authz.Principal`.

Both resolve through one small cache (a few seconds), so a busy
client costs no database round trip per request. Changes this process makes (logout, revocation,
role or membership changes) drop the cache at once; other gateways see them within the TTL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import asyncpg

from hub.actions.setup import hash_token
from hub.auth.access import AccessClaims, AccessTokenError, AccessTokens, looks_like_jwt
from hub.auth.platform import is_platform_token, principal_for_platform_token
from hub.authz import Principal
from hub.store.principals import principal_for_api_token, principal_for_session

TTL_S = 5.0


class Authenticator:
    def __init__(self, pool: asyncpg.Pool[Any], access: AccessTokens) -> None:
        self._pool = pool
        self.access = access
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._verified: dict[str, AccessClaims] = {}  # signature checks are ~35 us: keep them
        # called after forget(): live sockets re-check their credentials (realtime/server.py)
        self.on_forget: list[Callable[[], None]] = []

    async def for_token(self, token: str) -> Principal | None:
        """What sockets ask: the caller or None (a platform token works no inbox)."""
        try:
            found = await self.resolve(token)
        except AccessTokenError:
            return None
        return None if found is not None and found.platform else found

    async def resolve(self, token: str) -> Principal | None:
        if looks_like_jwt(token):
            claims = self._claims(token)
            key = f"s:{claims.session_id}"
        else:
            key = f"t:{hash_token(token).hex()}"
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        if looks_like_jwt(token):
            found = await principal_for_session(self._pool, claims.user_id, claims.session_id)
        elif is_platform_token(token):
            found = await principal_for_platform_token(self._pool, hash_token(token))
        else:
            found = await principal_for_api_token(self._pool, hash_token(token))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now + TTL_S, found)
        return found

    def _claims(self, token: str) -> AccessClaims:
        """Verified claims of an access token; raises for a bad or expired one."""
        claims = self._verified.get(token)
        if claims is None or claims.expires_at <= time.time():
            self._verified.pop(token, None)
            claims = self.access.verify(token)
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[token] = claims
        return claims

    async def still_valid(self, token: str) -> Principal | None:
        """A connected socket's caller now: its login session (even once the access token it
        connected with has expired) or its API token must still be live."""
        if looks_like_jwt(token):
            try:
                claims = self.access.verify(token, allow_expired=True)
            except AccessTokenError:
                return None
            return await principal_for_session(self._pool, claims.user_id, claims.session_id)
        return await principal_for_api_token(self._pool, hash_token(token))

    def forget(self) -> None:
        """Drop every cached caller: a session, token, role or membership changed."""
        self._cache.clear()
        for listener in self.on_forget:
            listener()
