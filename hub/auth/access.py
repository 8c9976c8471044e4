"""Short-lived access tokens (JWT, HS256, PyJWT) for logged-in users.

An access token names the user and the login session (``sid``); each request still checks that
the session is live (cached briefly by the gateway), so logout and refresh-token reuse take effect
without waiting for the token to expire.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import jwt

from hub.refusals import CodedRefusal

ISSUER = "hub"
_ALGORITHMS = ["HS256"]


class AccessTokenError(CodedRefusal):
    """Why an access token is not accepted."""


@dataclasses.dataclass(frozen=True)
class AccessClaims:
    user_id: str
    account_id: str
    session_id: str
    expires_at: int


class AccessTokens:
    def __init__(self, key: bytes, lifetime_s: int, old_keys: Sequence[bytes] = ()) -> None:
        """``old_keys``: keys derived from older keys of the ring, which still verify."""
        self._key = key
        self._keys = [key, *(k for k in old_keys if k != key)]
        self.lifetime_s = lifetime_s

    def issue(self, user_id: str, account_id: str, session_id: str) -> tuple[str, int]:
        """The token and its expiry (Unix seconds)."""
        now = int(time.time())
        expires = now + self.lifetime_s
        claims = {
            "iss": ISSUER,
            "sub": user_id,
            "acc": account_id,
            "sid": session_id,
            "typ": "access",
            "iat": now,
            "exp": expires,
        }
        return jwt.encode(claims, self._key, algorithm="HS256"), expires

    def verify(self, token: str, *, allow_expired: bool = False) -> AccessClaims:
        """``allow_expired``: for a live socket, whose login session (not the token's short
        lifetime) decides how long it may stay connected."""
        try:
            claims = self._decode(token, allow_expired)
        except jwt.ExpiredSignatureError as exc:
            raise AccessTokenError("token_expired", "the access token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise AccessTokenError("invalid_token", "the token is not valid") from exc
        if claims.get("typ") != "access":
            raise AccessTokenError("invalid_token", "the token is not an access token")
        return AccessClaims(
            str(claims["sub"]), str(claims["acc"]), str(claims["sid"]), int(claims["exp"])
        )

    def _decode(self, token: str, allow_expired: bool) -> dict[str, Any]:
        for n, key in enumerate(self._keys):
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=_ALGORITHMS,
                    issuer=ISSUER,
                    options={
                        "require": ["exp", "iat", "sub", "sid", "acc"],
                        "verify_exp": not allow_expired,
                    },
                )
                return claims
            except jwt.InvalidSignatureError:
                if n == len(self._keys) - 1:
                    raise
        raise AssertionError("unreachable: there is always a key")


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2
