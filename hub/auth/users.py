"""Creating users: the one place that normalises emails and hashes a first password.

Used by ``hub create-admin`` and by invitations (the admin API), so both apply the same rules.
"""

from __future__ import annotations

import asyncpg

from hub.auth.passwords import WeakPassword, check_policy, hash_password
from hub.authz import Role
from hub.ids import new_id
from hub.store.db import Conn

EMAIL_MAX = 254


class UserError(ValueError):
    """``code``: invalid_email, invalid_role, weak_password or email_taken."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def normalise_email(email: str) -> str:
    """Lower-cased and loosely checked: real validation is the invitation reaching the inbox."""
    value = email.strip().lower()
    local, at, domain = value.rpartition("@")
    if (
        not at
        or not local
        or not domain
        or len(value) > EMAIL_MAX
        or any(c.isspace() or c == "\x00" for c in value)
    ):
        raise UserError("invalid_email", "the email address is not valid")
    return value


async def create_user(
    conn: Conn,
    account_id: str,
    email: str,
    name: str,
    role: str,
    password: str | None = None,
) -> str:
    """Insert a user and return its id; :class:`UserError` when the input or the email is
    refused. Without ``password`` the user cannot log in until one is set (an invitation)."""
    email = normalise_email(email)
    if role not in {r.value for r in Role}:
        raise UserError("invalid_role", f"role must be one of {', '.join(r.value for r in Role)}")
    password_hash = None
    if password is not None:
        try:
            check_policy(password, email)
        except WeakPassword as exc:
            raise UserError(exc.code, str(exc)) from exc
        password_hash = await hash_password(password)
    user_id = new_id()
    try:
        async with conn.transaction():  # a savepoint inside the caller's transaction
            await conn.execute(
                """INSERT INTO users (id, account_id, email, name, role, password_hash)
                   VALUES ($1, $2, $3, $4, $5, $6)""",
                user_id,
                account_id,
                email,
                name,
                role,
                password_hash,
            )
    except asyncpg.UniqueViolationError as exc:
        raise UserError("email_taken", f"a user with the email {email} already exists") from exc
    return user_id
