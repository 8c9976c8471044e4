"""Presence and typing between two agents, with the python-socketio client."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
import socketio

from hub.actions.setup import create_api_token
from hub.app import Hub
from tests.support.api_channel import ApiInbox, api_body

pytestmark = pytest.mark.postgres


class Agent:
    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.got: dict[str, list[Any]] = {"presence": [], "presence_list": [], "typing": []}
        for name, seen in self.got.items():
            self.client.on(name, seen.append, namespace="/agent")

    async def connect(self, url: str, token: str) -> None:
        await self.client.connect(
            url,
            namespaces=["/agent"],
            auth={"token": token},
            transports=["websocket"],
            wait_timeout=10,
        )

    async def call(self, event: str, data: Any) -> Any:
        return await self.client.call(event, data, namespace="/agent", timeout=10)

    async def until(self, name: str, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.got[name]) < count:
                await asyncio.sleep(0.02)


async def tokens(hub: Hub) -> tuple[str, str, str]:
    """Two agents' tokens, and the first agent's id (its token id, until users exist)."""
    async with hub.pool.acquire() as conn:
        a = await create_api_token(conn, account_id=hub.account_id, name="ann", role="agent")
        b = await create_api_token(conn, account_id=hub.account_id, name="ben", role="agent")
    return a.token, b.token, a.id


async def test_presence_is_shared_set_and_dropped_with_the_last_socket(
    hub: Hub, server: str
) -> None:
    token_a, token_b, ann_id = await tokens(hub)
    ann, ben = Agent(), Agent()
    await ann.connect(server, token_a)
    await ben.connect(server, token_b)
    await ben.until("presence_list", 1)
    assert ben.got["presence_list"][0][ann_id] == "online"
    assert sorted(ben.got["presence_list"][0].values()) == ["online", "online"]

    assert await ann.call("presence", {"status": "busy"}) == {"ok": True, "status": "busy"}
    await ben.until("presence", 1)
    assert {"agent_id": ann_id, "status": "busy"} in ben.got["presence"]
    assert await hub.presence.status(hub.account_id, ann_id) == "busy", "what routing reads"
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{server}api/v1/agents/presence", headers={"Authorization": f"Bearer {token_b}"}
        ) as response,
    ):
        assert response.status == 200
        assert {"agent_id": ann_id, "status": "busy"} in (await response.json())["data"]
    refused = await ann.call("presence", {"status": "away"})
    assert refused["error"]["code"] == "invalid_status"

    await ann.client.disconnect()
    async with asyncio.timeout(10):
        while {"agent_id": ann_id, "status": "offline"} not in ben.got["presence"]:
            await asyncio.sleep(0.02)
    await ben.client.disconnect()


async def test_typing_reaches_the_other_agents_viewing_the_conversation(
    hub: Hub, server: str
) -> None:
    inbox = await ApiInbox.create(hub, server)
    conversation_id = (await inbox.send(api_body("t-1")))["messages"][0]["conversation_id"]

    token_a, token_b, ann_id = await tokens(hub)
    ann, ben = Agent(), Agent()
    await ann.connect(server, token_a)
    await ben.connect(server, token_b)
    assert (await ann.call("typing", {"conversation_id": conversation_id, "on": True}))["error"][
        "code"
    ] == "not_joined"
    assert (await ann.call("join", {"conversation_id": "nope"}))["error"]["code"] == "not_found"
    assert await ann.call("join", {"conversation_id": conversation_id}) == {"ok": True}
    assert await ben.call("join", {"conversation_id": conversation_id}) == {"ok": True}
    assert await ann.call("typing", {"conversation_id": conversation_id, "on": True}) == {
        "ok": True
    }
    await ben.until("typing", 1)
    assert ben.got["typing"][0]["conversation_id"] == conversation_id
    assert ben.got["typing"][0]["on"] is True
    assert ben.got["typing"][0]["agent_id"] == ann_id
    assert ann.got["typing"] == [], "the typist is not told about its own typing"
    assert await ben.call("leave", {"conversation_id": conversation_id}) == {"ok": True}
    await ann.call("typing", {"conversation_id": conversation_id, "on": False})
    await asyncio.sleep(0.2)
    assert len(ben.got["typing"]) == 1, "after leaving, no more typing"
    await ann.client.disconnect()
    await ben.client.disconnect()
