"""Login sessions: sessions with rotating refresh tokens, the MFA step.

A session is a refresh-token family. Each refresh marks the presented token rotated and issues the
next; a rotated token presented again means it was copied, so the whole family is revoked. A
session waiting for its second factor is in stage ``mfa`` and only the one-time MFA token (kept as
a hash, valid for minutes) can finish it. Refresh and MFA tokens are 32 random bytes, stored as
sha256: they are unguessable, so a fast hash is enough.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import asyncpg

from hub.audit import Origin
from hub.ids import new_id
from hub.store.db import Conn

MFA_STEP = timedelta(minutes=10)  # how long a password login waits for its second factor

Stage = Literal["active", "mfa"]
if TYPE_CHECKING:
    Queryable: TypeAlias = Conn | asyncpg.Pool[Any]  # reads run on either


def new_secret() -> tuple[str, bytes]:
    """A bearer secret and the hash stored in its place."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclasses.dataclass(frozen=True)
class LoginUser:
    """What logging in needs to know about a user (never leaves the server as is)."""

    id: str
    account_id: str
    email: str
    name: str
    role: str
    password_hash: str | None
    disabled: bool
    mfa_enabled: bool
    mfa_secret: bytes | None
    mfa_required: bool  # the account requires MFA of everyone

    @property
    def needs_mfa(self) -> bool:
        return self.mfa_enabled or self.mfa_required


_USER = """u.id, u.account_id, u.email, u.name, u.role, u.password_hash,
           u.disabled_at IS NOT NULL AS disabled, u.mfa_enabled, u.mfa_secret, a.mfa_required"""
_FIELDS = [f.name for f in dataclasses.fields(LoginUser)]


def _user(row: asyncpg.Record) -> LoginUser:
    return LoginUser(**{name: row[name] for name in _FIELDS})


async def user_by_email(conn: Queryable, email: str) -> LoginUser | None:
    if "\x00" in email:  # PostgreSQL text cannot hold it, and no email has it
        return None
    row = await conn.fetchrow(
        f"""SELECT {_USER} FROM users u JOIN accounts a ON a.id = u.account_id
             WHERE lower(u.email) = $1""",
        email.strip().lower(),
    )
    return None if row is None else _user(row)


async def user_by_id(
    conn: Queryable, user_id: str, *, for_update: bool = False
) -> LoginUser | None:
    lock = " FOR UPDATE OF u" if for_update else ""
    row = await conn.fetchrow(
        f"""SELECT {_USER} FROM users u JOIN accounts a ON a.id = u.account_id
             WHERE u.id = $1{lock}""",
        user_id,
    )
    return None if row is None else _user(row)


@dataclasses.dataclass(frozen=True)
class StartedSession:
    id: str
    expires_at: datetime
    refresh_token: str | None = None  # active sessions
    mfa_token: str | None = None  # sessions waiting for the second factor


async def issue_refresh(conn: Conn, session_id: str) -> str:
    token, digest = new_secret()
    await conn.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)", digest, session_id
    )
    return token


async def start_session(
    conn: Conn, user: LoginUser, stage: Stage, lifetime: timedelta, origin: Origin
) -> StartedSession:
    """An active session with its first refresh token, or one waiting for the MFA step."""
    session_id = new_id()
    mfa_token, mfa_hash = new_secret() if stage == "mfa" else (None, None)
    expires_at: datetime = await conn.fetchval(
        """INSERT INTO auth_sessions (id, user_id, account_id, stage, expires_at, client_address,
                                      user_agent, mfa_token_hash)
           VALUES ($1, $2, $3, $4, now() + $5::interval, $6, $7, $8)
        RETURNING expires_at""",
        session_id,
        user.id,
        user.account_id,
        stage,
        MFA_STEP if stage == "mfa" else lifetime,
        origin.client_address,
        origin.user_agent,
        mfa_hash,
    )
    if stage == "mfa":
        return StartedSession(session_id, expires_at, mfa_token=mfa_token)
    return StartedSession(
        session_id, expires_at, refresh_token=await issue_refresh(conn, session_id)
    )


async def pending_mfa(conn: Conn, mfa_token: str) -> tuple[str, LoginUser] | None:
    """The session an MFA token finishes and its user, locked for this transaction."""
    row = await conn.fetchrow(
        f"""SELECT s.id AS session_id, {_USER}
              FROM auth_sessions s JOIN users u ON u.id = s.user_id
                   JOIN accounts a ON a.id = u.account_id
             WHERE s.mfa_token_hash = $1 AND s.stage = 'mfa' AND s.revoked_at IS NULL
               AND s.expires_at > now() AND u.disabled_at IS NULL
               FOR UPDATE OF s, u""",
        token_hash(mfa_token),
    )
    return None if row is None else (row["session_id"], _user(row))


async def activate(conn: Conn, session_id: str, lifetime: timedelta) -> StartedSession:
    """Finish the MFA step: the session becomes active and gets its first refresh token."""
    expires_at: datetime = await conn.fetchval(
        """UPDATE auth_sessions
              SET stage = 'active', mfa_token_hash = NULL, expires_at = now() + $2::interval,
                  last_used_at = now()
            WHERE id = $1 AND stage = 'mfa'
        RETURNING expires_at""",
        session_id,
        lifetime,
    )
    return StartedSession(
        session_id, expires_at, refresh_token=await issue_refresh(conn, session_id)
    )


@dataclasses.dataclass(frozen=True)
class Rotation:
    """``rotated``: a new refresh token; ``reused``: a rotated token came back and its session was
    revoked just now; ``invalid``: unknown token, or a revoked or expired session."""

    outcome: Literal["rotated", "reused", "invalid"]
    session: StartedSession | None = None
    user: LoginUser | None = None


async def rotate_refresh(conn: Conn, refresh_token: str) -> Rotation:
    digest = token_hash(refresh_token)
    row: Any = await conn.fetchrow(
        f"""SELECT r.session_id, r.rotated_at IS NOT NULL AS rotated, s.expires_at,
                   (s.revoked_at IS NULL AND s.expires_at > now() AND s.stage = 'active') AS live,
                   {_USER}
              FROM refresh_tokens r JOIN auth_sessions s ON s.id = r.session_id
                   JOIN users u ON u.id = s.user_id JOIN accounts a ON a.id = u.account_id
             WHERE r.token_hash = $1
               FOR UPDATE OF r, s""",
        digest,
    )
    if row is None or not row["live"]:
        return Rotation("invalid")
    user = _user(row)
    session_id = row["session_id"]
    if row["rotated"]:
        await revoke_session(conn, session_id, "refresh_reuse")
        return Rotation("reused", StartedSession(session_id, row["expires_at"]), user)
    if user.disabled:
        return Rotation("invalid")
    await conn.execute("UPDATE refresh_tokens SET rotated_at = now() WHERE token_hash = $1", digest)
    await conn.execute("UPDATE auth_sessions SET last_used_at = now() WHERE id = $1", session_id)
    token = await issue_refresh(conn, session_id)
    return Rotation("rotated", StartedSession(session_id, row["expires_at"], token), user)


async def revoke_session(conn: Conn, session_id: str, reason: str) -> bool:
    done = await conn.fetchval(
        """UPDATE auth_sessions SET revoked_at = now(), revoked_reason = $2
            WHERE id = $1 AND revoked_at IS NULL RETURNING true""",
        session_id,
        reason,
    )
    return bool(done)


async def revoke_user_sessions(
    conn: Conn, user_id: str, reason: str, keep: str | None = None
) -> int:
    """Revoke every live session of a user but ``keep``; how many were revoked."""
    rows = await conn.fetch(
        """UPDATE auth_sessions SET revoked_at = now(), revoked_reason = $2
            WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $3
        RETURNING id""",
        user_id,
        reason,
        keep,
    )
    return len(rows)
