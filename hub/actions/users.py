"""Users of an account: invitations, role changes, disabling and enabling.

An invitation is a user row without a password and with the sha256 of a one-time token; the token
itself is returned once to the inviter and consumed by ``POST /api/v1/auth/accept-invite``.
An account always keeps an active administrator (enabled, with a password set): demoting or
disabling the last one is refused, under a per-account lock so two admins demoting each other at
once cannot both succeed.
"""

from __future__ import annotations

import dataclasses
import secrets
from datetime import datetime

from hub import audit
from hub.actions.accounts import Refused, audit_object
from hub.actions.setup import hash_token
from hub.audit import Origin
from hub.authz import Principal, Role
from hub.ids import new_id
from hub.store.db import Conn

INVITE_DAYS = 7


@dataclasses.dataclass(frozen=True)
class Invitation:
    user_id: str
    token: str
    expires_at: datetime


async def invite_user(
    conn: Conn,
    *,
    account_id: str,
    email: str,
    name: str,
    role: Role,
    actor: Principal,
    origin: Origin,
) -> Invitation:
    """One login per address across all accounts, so an address in use anywhere is a conflict."""
    token = "inv_" + secrets.token_urlsafe(32)
    user_id = new_id()
    expires_at: datetime | None = await conn.fetchval(
        f"""INSERT INTO users (id, account_id, email, name, role, invite_hash, invite_expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, now() + interval '{INVITE_DAYS} days')
            ON CONFLICT ((lower(email))) DO NOTHING
            RETURNING invite_expires_at""",
        user_id,
        account_id,
        email.lower(),
        name,
        role.value,
        hash_token(token),
    )
    if expires_at is None:
        raise Refused(
            "conflict", "email_taken", "a user with this email address exists", {"field": "email"}
        )
    await audit_object(
        conn,
        "user",
        account_id,
        user_id,
        "user.invited",
        actor,
        origin,
        email=email.lower(),
        role=role.value,
    )
    return Invitation(user_id, token, expires_at)


async def _keep_an_administrator(conn: Conn, account_id: str, user_id: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"hub:admins:{account_id}")
    others = await conn.fetchval(
        """SELECT count(*) FROM users
            WHERE account_id = $1 AND id <> $2 AND role = 'administrator'
              AND disabled_at IS NULL AND password_hash IS NOT NULL""",
        account_id,
        user_id,
    )
    if not others:
        raise Refused(
            "conflict",
            "last_administrator",
            "this is the account's last active administrator; promote another user first",
        )


async def update_user(
    conn: Conn,
    *,
    account_id: str,
    user_id: str,
    actor: Principal,
    origin: Origin,
    name: str | None = None,
    role: Role | None = None,
    disabled: bool | None = None,
) -> None:
    """Change what is given (``None``: unchanged). Disabling revokes every login session and API
    token of the user and any pending invitation; enabling does not bring them back."""
    row = await conn.fetchrow(
        """SELECT name, role, disabled_at IS NOT NULL AS disabled,
                  password_hash IS NOT NULL AS has_password
             FROM users WHERE id = $1 AND account_id = $2 FOR NO KEY UPDATE""",
        user_id,
        account_id,
    )
    if row is None:
        raise Refused("not_found", "not_found", "no such user")
    role_changed = role is not None and role.value != row["role"]
    disabling = disabled is True and not row["disabled"]
    enabling = disabled is False and row["disabled"]
    renamed = name is not None and name != row["name"]
    active_admin = (
        row["role"] == Role.ADMINISTRATOR.value and not row["disabled"] and row["has_password"]
    )
    if active_admin and (role_changed or disabling):
        await _keep_an_administrator(conn, account_id, user_id)

    async def audit(action: str, **details: object) -> None:
        await audit_object(conn, "user", account_id, user_id, action, actor, origin, **details)

    if renamed or role_changed:
        await conn.execute(
            "UPDATE users SET name = $2, role = $3, updated_at = now() WHERE id = $1",
            user_id,
            name if renamed else row["name"],
            role.value if role is not None and role_changed else row["role"],
        )
    if renamed:
        await audit("user.updated", changed=["name"])
    if role_changed and role is not None:
        await audit("user.role_changed", **{"from": row["role"], "to": role.value})
    if disabling:
        await conn.execute(
            """UPDATE users SET disabled_at = now(), invite_hash = NULL, invite_expires_at = NULL,
                      updated_at = now()
                WHERE id = $1""",
            user_id,
        )
        sessions = await conn.fetchval(
            """WITH revoked AS (
                   UPDATE auth_sessions SET revoked_at = now(), revoked_reason = 'user_disabled'
                    WHERE user_id = $1 AND revoked_at IS NULL RETURNING 1)
               SELECT count(*) FROM revoked""",
            user_id,
        )
        tokens = await conn.fetchval(
            """WITH revoked AS (
                   UPDATE api_tokens SET revoked_at = now()
                    WHERE user_id = $1 AND revoked_at IS NULL RETURNING 1)
               SELECT count(*) FROM revoked""",
            user_id,
        )
        await audit("user.disabled", sessions_revoked=sessions, api_tokens_revoked=tokens)
    if enabling:
        await conn.execute(
            "UPDATE users SET disabled_at = NULL, updated_at = now() WHERE id = $1", user_id
        )
        await audit("user.enabled")


async def set_sip_uri(
    conn: Conn, actor: Principal, user_id: str, sip_uri: str, origin: Origin
) -> None:
    """The phone voice calls the user takes ring on ("" removes it: they are offered no calls)."""
    previous = await conn.fetchval(
        "SELECT sip_uri FROM users WHERE id = $1 AND account_id = $2 FOR NO KEY UPDATE",
        user_id,
        actor.account_id,
    )
    value = sip_uri or None
    if previous == value:
        return
    await conn.execute(
        "UPDATE users SET sip_uri = $2, updated_at = now() WHERE id = $1", user_id, value
    )
    await audit.record(
        conn,
        account_id=actor.account_id,
        actor=actor,
        action="user.phone_changed",
        object_type="user",
        object_id=user_id,
        origin=origin,
        details={"sip_uri": value},
    )
