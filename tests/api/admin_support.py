"""Helpers for the admin API tests: users with personal API tokens, a second account."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp.test_utils import TestClient

from hub.actions.setup import hash_token
from hub.app import Hub
from hub.ids import new_id
from tests.conftest import ADMIN_TOKEN

Client = TestClient[Any, Any]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def make_user(
    hub: Hub,
    role: str = "agent",
    *,
    account_id: str | None = None,
    email: str | None = None,
    name: str = "Someone",
    inboxes: Iterable[str] = (),
    password: bool = True,
) -> tuple[str, dict[str, str]]:
    """A user (with a password set unless ``password`` is false: then still invited) and the
    headers of a personal API token of theirs."""
    user_id = new_id()
    token = f"user-token-{user_id}"
    account = account_id or hub.account_id
    async with hub.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO users (id, account_id, email, name, role, password_hash)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            user_id,
            account,
            email or f"{user_id.lower()}@example.com",
            name,
            role,
            "$argon2id$not-a-real-hash" if password else None,
        )
        for inbox_id in inboxes:
            await conn.execute("INSERT INTO inbox_members VALUES ($1, $2)", inbox_id, user_id)
        await conn.execute(
            """INSERT INTO api_tokens (id, account_id, user_id, name, role, token_hash)
               VALUES ($1, $2, $3, 'test', $4, $5)""",
            new_id(),
            account,
            user_id,
            role,
            hash_token(token),
        )
    return user_id, bearer(token)


async def other_account(hub: Hub) -> tuple[str, dict[str, str]]:
    """A second account and the headers of an administrator token of its own."""
    account_id = new_id()
    token = f"other-admin-{account_id}"
    async with hub.pool.acquire() as conn:
        await conn.execute("INSERT INTO accounts (id, name) VALUES ($1, 'Other')", account_id)
        await conn.execute(
            """INSERT INTO api_tokens (id, account_id, name, role, token_hash)
               VALUES ($1, $2, 'other', 'administrator', $3)""",
            new_id(),
            account_id,
            hash_token(token),
        )
    return account_id, bearer(token)


async def call(
    client: Client,
    method: str,
    path: str,
    headers: dict[str, str] = ADMIN,
    json: Any = None,
    **kwargs: Any,
) -> tuple[int, Any]:
    """Status and decoded body (``None`` when empty)."""
    response = await client.request(method, path, headers=headers, json=json, **kwargs)
    text = await response.text()
    return response.status, (await response.json() if text else None)


async def audit_entries(hub: Hub, action: str) -> list[dict[str, Any]]:
    rows = await hub.pool.fetch("SELECT * FROM audit_log WHERE action = $1 ORDER BY id", action)
    return [dict(r) for r in rows]
