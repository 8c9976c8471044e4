"""Helpers for the authentication tests: users with passwords, logging in, bearer headers."""

from __future__ import annotations

import time
from typing import Any

import pyotp
from aiohttp.test_utils import TestClient

from hub.app import Hub
from hub.auth.users import create_user

PASSWORD = "correct horse battery"
Client = TestClient[Any, Any]


async def make_user(
    hub: Hub, email: str = "ana@example.com", role: str = "agent", password: str = PASSWORD
) -> str:
    async with hub.pool.acquire() as conn:
        return await create_user(conn, hub.account_id, email, "Ana", role, password)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post(
    client: Client, path: str, body: Any, token: str | None = None
) -> tuple[int, Any, dict[str, str]]:
    response = await client.post(path, json=body, headers=bearer(token) if token else None)
    data = await response.json() if response.status != 204 else None
    return response.status, data, dict(response.headers)


async def login(
    client: Client, email: str = "ana@example.com", password: str = PASSWORD
) -> tuple[int, Any, dict[str, str]]:
    return await post(client, "/api/v1/auth/login", {"email": email, "password": password})


async def logged_in(client: Client, email: str = "ana@example.com") -> dict[str, Any]:
    status, data, _ = await login(client, email)
    assert status == 200, data
    assert data["status"] == "authenticated"
    return dict(data)


async def get(client: Client, path: str, token: str) -> tuple[int, Any]:
    response = await client.get(path, headers=bearer(token))
    return response.status, await response.json()


async def audit_actions(hub: Hub) -> list[str]:
    rows = await hub.pool.fetch("SELECT action FROM audit_log ORDER BY id")
    return [r["action"] for r in rows]


def wrong_code(totp: pyotp.TOTP) -> str:
    """A code no step near now has."""
    now = time.time()
    near = {totp.at(now + d * totp.interval) for d in (-2, -1, 0, 1, 2)}
    return next(
        c for c in ("000000", "111111", "222222", "333333", "444444", "555555") if c not in near
    )


def next_code(totp: pyotp.TOTP) -> str:
    """The code of the next time step: valid now (one step of drift) and newer than any used."""
    return totp.at(time.time() + totp.interval)
