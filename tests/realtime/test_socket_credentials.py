"""Live agent sockets follow their credentials: a logged-out (revoked) session, a revoked API token
or a changed inbox membership disconnects the socket, so nobody keeps a stream they may no longer
have. A socket outlives its short access token while the login session lives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio
from aiohttp.test_utils import TestServer

from gateway.state import STATE
from hub.actions.setup import hash_token
from hub.app import Hub
from hub.auth.access import AccessTokens
from server.compose import build_app
from tests.realtime.agents import Agent

pytestmark = pytest.mark.postgres


@pytest.fixture
async def app_server(hub: Hub) -> AsyncIterator[TestServer]:
    server = TestServer(build_app(hub))
    await server.start_server()
    yield server
    await server.close()


async def _agent_with_session(hub: Hub, lifetime_s: int) -> tuple[str, str]:
    async with hub.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO users (id, account_id, email, role)
               VALUES ('u1', $1, 'u1@example.com', 'agent')""",
            hub.account_id,
        )
        await conn.execute(
            """INSERT INTO auth_sessions (id, user_id, account_id, expires_at)
               VALUES ('s1', 'u1', $1, now() + interval '1 day')""",
            hub.account_id,
        )
    token, _ = AccessTokens(hub.box.derive("access-token"), lifetime_s).issue(
        "u1", hub.account_id, "s1"
    )
    return "s1", token


async def _disconnected(agent: Agent) -> None:
    await agent.wait_until(lambda: not agent.client.connected, within=10)


async def test_logout_disconnects_the_sessions_sockets(hub: Hub, app_server: TestServer) -> None:
    session, token = await _agent_with_session(hub, lifetime_s=900)
    agent = Agent()
    await agent.connect(str(app_server.make_url("/")), token=token)
    await hub.pool.execute("UPDATE auth_sessions SET revoked_at = now() WHERE id = $1", session)
    app: Any = app_server.app
    app[STATE].auth.forget()  # what logout does after revoking
    await _disconnected(agent)
    again = Agent()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await again.connect(str(app_server.make_url("/")), token=token)


async def test_membership_change_disconnects_and_a_live_session_outlives_its_token(
    hub: Hub, app_server: TestServer
) -> None:
    _, token = await _agent_with_session(hub, lifetime_s=1)
    agent = Agent()
    await agent.connect(str(app_server.make_url("/")), token=token)
    app: Any = app_server.app
    await asyncio.sleep(1.5)  # the access token has expired; the session has not
    app[STATE].auth.forget()
    await asyncio.sleep(0.5)
    assert agent.client.connected, "an expired access token alone does not cut a live socket"
    inbox = await hub.pool.fetchval(
        "INSERT INTO inboxes (id, account_id, channel, name) VALUES ('i1', $1, 'api', 'x') "
        "RETURNING id",
        hub.account_id,
    )
    await hub.pool.execute("INSERT INTO inbox_members VALUES ($1, 'u1')", inbox)
    app[STATE].auth.forget()
    await _disconnected(agent)


async def test_revoked_api_token_disconnects(hub: Hub, app_server: TestServer) -> None:
    await hub.pool.execute(
        """INSERT INTO api_tokens (id, account_id, name, role, token_hash)
           VALUES ('t1', $1, 'x', 'agent', $2)""",
        hub.account_id,
        hash_token("plain-token"),
    )
    agent = Agent()
    await agent.connect(str(app_server.make_url("/")), token="plain-token")
    await hub.pool.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = 't1'")
    app: Any = app_server.app
    app[STATE].auth.forget()
    await _disconnected(agent)
