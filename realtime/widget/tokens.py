"""Visitor tokens and identity hashes, both keyed by the inbox's ``identity_secret``.

An anonymous visitor gets a signed token (a JWT, HS256, audience the inbox) naming a visitor id;
the widget keeps it in localStorage and shows it at every connect, so the visitor stays the same
contact. The token's key is derived from the secret (not the secret itself), so a token never
doubles as an identity hash. A site that knows who its customer is passes ``identifier`` and
``HMAC-SHA256(identifier, identity_secret)`` in hex: that visitor is the contact of the
identifier, on any device; a hash that does not match is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

import jwt

from hub.ids import new_id

_ISSUER = "hub-webchat"
_VISITOR = re.compile(r"v_[0-9A-HJKMNP-TV-Z]{26}")


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"hub webchat visitor token v1", hashlib.sha256).digest()


def new_visitor() -> str:
    return "v_" + new_id()


def issue(secret: str, inbox_id: str, visitor_id: str) -> str:
    claims = {"iss": _ISSUER, "aud": inbox_id, "sub": visitor_id, "iat": int(time.time())}
    return jwt.encode(claims, _key(secret), algorithm="HS256")


def verify(secret: str, inbox_id: str, token: str) -> str | None:
    """The visitor id of a token this inbox signed, else ``None`` (tampered, another inbox's)."""
    if len(token) > 1024:
        return None
    try:
        claims = jwt.decode(
            token,
            _key(secret),
            algorithms=["HS256"],
            audience=inbox_id,
            issuer=_ISSUER,
            options={"require": ["iss", "aud", "sub", "iat"]},
        )
    except jwt.PyJWTError:
        return None
    visitor = claims.get("sub")
    return visitor if isinstance(visitor, str) and _VISITOR.fullmatch(visitor) else None


def identity_hash(secret: str, identifier: str) -> str:
    """What the site computes on its server: HMAC-SHA256 of the identifier, in hex."""
    return hmac.new(secret.encode(), identifier.encode(), hashlib.sha256).hexdigest()


def identity_ok(secret: str, identifier: str, given: str) -> bool:
    return hmac.compare_digest(identity_hash(secret, identifier), given.strip().lower())
