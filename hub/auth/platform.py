"""Platform operators' tokens: who may create accounts (tenants) on a hub shared by several
businesses. Made with ``hub platform-token create`` (shown once); the hub keeps only a hash."""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

import asyncpg

from hub.actions.setup import hash_token
from hub.authz import Principal, Role
from hub.ids import new_id
from hub.store.db import Conn

PREFIX = "hubp_"


@dataclasses.dataclass(frozen=True)
class PlatformToken:
    id: str
    name: str
    token: str


def is_platform_token(token: str) -> bool:
    return token.startswith(PREFIX)


async def create_platform_token(conn: Conn, name: str) -> PlatformToken:
    token = PREFIX + secrets.token_urlsafe(32)
    token_id = new_id()
    await conn.execute(
        "INSERT INTO platform_tokens (id, name, token_hash) VALUES ($1, $2, $3)",
        token_id,
        name,
        hash_token(token),
    )
    return PlatformToken(token_id, name, token)


async def principal_for_platform_token(
    pool: Conn | asyncpg.Pool[Any], token_hash: bytes
) -> Principal | None:
    token_id: str | None = await pool.fetchval(
        """UPDATE platform_tokens SET last_used_at = now()
            WHERE token_hash = $1 AND revoked_at IS NULL RETURNING id""",
        token_hash,
    )
    if token_id is None:
        return None
    # no account, no inbox: the permission check lets it reach the platform routes only
    return Principal(
        account_id="", role=Role.AGENT, token_id=token_id, inboxes=frozenset(), platform=True
    )
