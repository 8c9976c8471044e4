"""Turning a verified credential into a :class:`~hub.authz.Principal`: role, visible inboxes and
scopes, read in one query so a request costs one round trip at most (the gateway caches it)."""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.authz import Principal, Role
from hub.store.db import Conn

# inboxes a user sees: direct memberships, plus (supervisors) every inbox of their teams
_VISIBLE_INBOXES = """
    ARRAY(SELECT im.inbox_id FROM inbox_members im WHERE im.user_id = u.id
          UNION
          SELECT ti.inbox_id FROM team_members tm JOIN team_inboxes ti ON ti.team_id = tm.team_id
           WHERE tm.user_id = u.id AND u.role = 'supervisor')"""


def _principal(row: asyncpg.Record, **ids: Any) -> Principal:
    role = Role(row["role"])
    inboxes = None if role is Role.ADMINISTRATOR else frozenset(row["inboxes"] or ())
    scopes = row.get("scopes")
    return Principal(
        account_id=row["account_id"],
        role=role,
        inboxes=inboxes,
        scopes=frozenset(scopes) if scopes is not None else None,
        **ids,
    )


async def principal_for_api_token(
    pool: Conn | asyncpg.Pool[Any], token_hash: bytes
) -> Principal | None:
    """A live API token's caller: a user's personal token acts as that user (narrowed to its
    scopes); a CLI-created token carries its own role and sees every inbox of its account."""
    row = await pool.fetchrow(
        f"""UPDATE api_tokens t SET last_used_at = now()
              FROM (SELECT t2.id, coalesce(u.role, t2.role) AS role,
                           CASE WHEN u.id IS NULL THEN NULL ELSE {_VISIBLE_INBOXES} END
                               AS inboxes
                      FROM api_tokens t2 LEFT JOIN users u ON u.id = t2.user_id
                     WHERE t2.token_hash = $1 AND t2.revoked_at IS NULL
                       AND (t2.expires_at IS NULL OR t2.expires_at > now())
                       AND (t2.user_id IS NULL OR u.disabled_at IS NULL)) found
             WHERE t.id = found.id
         RETURNING t.id, t.account_id, t.user_id, t.scopes, found.role, found.inboxes""",
        token_hash,
    )
    if row is None:
        return None
    if row["user_id"] is None:  # CLI token: its role over the whole account
        return Principal(
            account_id=row["account_id"],
            role=Role(row["role"]),
            token_id=row["id"],
            scopes=frozenset(row["scopes"]) if row["scopes"] is not None else None,
        )
    return _principal(row, user_id=row["user_id"], token_id=row["id"])


async def principal_for_session(
    pool: Conn | asyncpg.Pool[Any], user_id: str, session_id: str
) -> Principal | None:
    """The caller behind an access token, while its login session is live and the user enabled."""
    row = await pool.fetchrow(
        f"""SELECT u.account_id, u.role, NULL::text[] AS scopes, {_VISIBLE_INBOXES} AS inboxes
              FROM auth_sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = $2 AND s.user_id = $1 AND s.stage = 'active'
               AND s.revoked_at IS NULL AND s.expires_at > now() AND u.disabled_at IS NULL""",
        user_id,
        session_id,
    )
    if row is None:
        return None
    return _principal(row, user_id=user_id, session_id=session_id)
