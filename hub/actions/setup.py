"""Set-up actions: accounts, inboxes and API tokens.

Creating an inbox generates its signing secret and stores it encrypted; the clear secret is
returned once to the caller (the CLI prints it) and never logged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from typing import Any

from hub.contracts.registry import get_channel
from hub.ids import new_id
from hub.secrets import SecretBox
from hub.store.admin_reads import mask_secret
from hub.store.db import Conn

DEFAULT_ACCOUNT_NAME = "Default"
ROLES = ("administrator", "supervisor", "agent")


class SetupError(ValueError):
    pass


async def ensure_default_account(conn: Conn) -> str:
    """The account a fresh hub works in; created once, found afterwards."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('hub:default-account'))")
        existing: str | None = await conn.fetchval("SELECT id FROM accounts ORDER BY id LIMIT 1")
        if existing is not None:
            return existing
        account_id = new_id()
        await conn.execute(
            "INSERT INTO accounts (id, name) VALUES ($1, $2)", account_id, DEFAULT_ACCOUNT_NAME
        )
        return account_id


@dataclasses.dataclass(frozen=True)
class CreatedInbox:
    id: str
    account_id: str
    channel: str
    name: str
    secrets: dict[str, str]
    #: the secrets the hub made (an API inbox's signing secret when none was given)
    generated: tuple[str, ...] = ()

    def credentials_shown(self) -> dict[str, str]:
        """What the reply to a create shows: the secrets the hub made, in clear, once (nobody
        else knows them, and the provider side needs them); the ones the caller gave, masked
        as every later read shows them (the caller has them already)."""
        return {
            key: value if key in self.generated else mask_secret(value)
            for key, value in sorted(self.secrets.items())
        }


async def create_inbox(
    conn: Conn,
    box: SecretBox,
    *,
    account_id: str,
    channel: str,
    name: str,
    reopen_policy: str = "reopen",
    secrets_in: dict[str, str] | None = None,
    settings: dict[str, Any] | None = None,
) -> CreatedInbox:
    adapter = get_channel(channel)
    if adapter is None:
        raise SetupError(f"unknown channel {channel!r}")
    if reopen_policy not in ("reopen", "new"):
        raise SetupError("reopen_policy must be 'reopen' or 'new'")
    values = dict(secrets_in or {})
    generated: tuple[str, ...] = ()
    generated = tuple(k for k in adapter.manifest.generated_secrets if not values.get(k))
    for key in generated:
        values[key] = secrets.token_urlsafe(32)
    missing = [s for s in adapter.manifest.required_secrets if not values.get(s)]
    if missing:
        raise SetupError(f"missing secrets for {channel}: {', '.join(missing)}")
    inbox_id = new_id()
    await conn.execute(
        """INSERT INTO inboxes (id, account_id, channel, name, reopen_policy, secrets, settings)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        inbox_id,
        account_id,
        channel,
        name,
        reopen_policy,
        box.seal(values),
        settings or {},
    )
    return CreatedInbox(inbox_id, account_id, channel, name, values, generated)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclasses.dataclass(frozen=True)
class CreatedToken:
    id: str
    account_id: str
    role: str
    token: str


async def create_api_token(
    conn: Conn, *, account_id: str, name: str, role: str = "administrator"
) -> CreatedToken:
    if role not in ROLES:
        raise SetupError(f"role must be one of {', '.join(ROLES)}")
    token = "hub_" + secrets.token_urlsafe(32)
    token_id = new_id()
    await conn.execute(
        """INSERT INTO api_tokens (id, account_id, name, role, token_hash)
           VALUES ($1, $2, $3, $4, $5)""",
        token_id,
        account_id,
        name,
        role,
        hash_token(token),
    )
    return CreatedToken(token_id, account_id, role, token)
