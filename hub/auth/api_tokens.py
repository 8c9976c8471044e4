"""Personal API tokens: a user's long-lived credential for scripts, narrowed to some scopes.

The token is shown once; only its sha256 (for lookup, as for CLI tokens) and its first characters
(to recognise it in a list) are kept. It acts as its user with the user's current role, never more
than the scopes it was given.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from hub.actions.setup import hash_token
from hub.authz import GRANTS, Role
from hub.ids import new_id
from hub.refusals import CodedRefusal
from hub.store.db import Conn

PREFIX_LENGTH = 8
MAX_PER_USER = 100


class TokenRefused(CodedRefusal):
    """``code``: invalid_scopes or too_many_tokens."""


@dataclasses.dataclass(frozen=True)
class CreatedToken:
    id: str
    token: str
    token_prefix: str
    created_at: datetime
    expires_at: datetime | None


def beyond_role(role: str, scopes: Iterable[str]) -> list[str]:
    """The scopes the role does not grant (a token can only narrow its user's rights)."""
    granted = {p.value for p in GRANTS[Role(role)]}
    return sorted(set(scopes) - granted)


async def create_personal_token(
    conn: Conn,
    *,
    user_id: str,
    account_id: str,
    role: str,
    name: str,
    scopes: list[str],
    expires_in_days: int | None,
) -> CreatedToken:
    extra = beyond_role(role, scopes)
    if extra:
        raise TokenRefused(
            "invalid_scopes", "a token cannot have scopes the role lacks", {"scopes": extra}
        )
    await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)  # count, then add
    live = await conn.fetchval(
        "SELECT count(*) FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL", user_id
    )
    if live >= MAX_PER_USER:
        raise TokenRefused("too_many_tokens", f"a user may have at most {MAX_PER_USER} tokens")
    token = "hub_" + secrets.token_urlsafe(32)
    token_id = new_id()
    lifetime = timedelta(days=expires_in_days) if expires_in_days is not None else None
    row = await conn.fetchrow(
        """INSERT INTO api_tokens (id, account_id, user_id, name, role, token_hash, scopes,
                                   expires_at, token_prefix)
           VALUES ($1, $2, $3, $4, $5, $6, $7, now() + $8::interval, $9)
        RETURNING created_at, expires_at""",
        token_id,
        account_id,
        user_id,
        name,
        role,
        hash_token(token),
        sorted(set(scopes)),
        lifetime,
        token[:PREFIX_LENGTH],
    )
    assert row is not None
    return CreatedToken(
        token_id, token, token[:PREFIX_LENGTH], row["created_at"], row["expires_at"]
    )


async def list_personal_tokens(conn: Conn, user_id: str) -> list[dict[str, Any]]:
    """Live (unrevoked) tokens, newest first; expired ones too, so they can be cleaned up."""
    rows = await conn.fetch(
        """SELECT id, name, token_prefix, coalesce(scopes, '{}') AS scopes, created_at,
                  expires_at, last_used_at
             FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL
            ORDER BY id DESC""",
        user_id,
    )
    return [dict(r) for r in rows]


async def revoke_personal_token(conn: Conn, user_id: str, token_id: str) -> dict[str, Any] | None:
    """The revoked token's name and prefix, or None if the user has no such live token."""
    row = await conn.fetchrow(
        """UPDATE api_tokens SET revoked_at = now()
            WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL
        RETURNING name, token_prefix""",
        token_id,
        user_id,
    )
    return None if row is None else dict(row)
