"""Presence changes become ``agent.presence_changed`` events (once per change, through the bus
into the journal), with real sockets; and a hub that starts with agents still recorded online
that no process holds (a crash wrote no offline) records them offline."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestServer

from hub.app import Hub
from realtime.part import Live
from server.compose import build_app
from tests.realtime.test_presence_typing import Agent, tokens

pytestmark = pytest.mark.postgres


async def _changes(hub: Hub, agent_id: str) -> list[dict[str, Any]]:
    async with hub.pool.acquire() as conn:
        rows = await conn.fetch(  # the journal: the events that went through the bus
            """SELECT event FROM event_log WHERE type = 'agent.presence_changed'
                ORDER BY occurred_at, id"""
        )
    found = [msgspec.json.decode(r["event"]) for r in rows]
    return [e for e in found if e["payload"]["agent_id"] == agent_id]


async def _until(hub: Hub, agent_id: str, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(10):
        while len(found := await _changes(hub, agent_id)) < count:
            await asyncio.sleep(0.05)
    return found


async def test_connect_busy_and_disconnect_are_recorded_once_each(hub: Hub, server: str) -> None:
    token_a, _, ann_id = await tokens(hub)
    ann, again = Agent(), Agent()
    await ann.connect(server, token_a)
    await _until(hub, ann_id, 1)
    await again.connect(server, token_a)  # a second socket of the same agent: no change
    assert await ann.call("presence", {"status": "busy"}) == {"ok": True, "status": "busy"}
    assert await again.call("presence", {"status": "busy"}) == {"ok": True, "status": "busy"}
    await _until(hub, ann_id, 2)
    await again.client.disconnect()  # not the last socket: still busy
    await asyncio.sleep(0.3)
    await ann.client.disconnect()
    events = await _until(hub, ann_id, 3)
    await asyncio.sleep(0.3)
    events = await _changes(hub, ann_id)
    assert [(e["payload"]["previous"], e["payload"]["status"]) for e in events] == [
        ("offline", "online"),
        ("online", "busy"),
        ("busy", "offline"),
    ]
    assert all(e["account_id"] == hub.account_id for e in events)
    assert all(e["conversation_id"] is None for e in events)
    assert [e["actor"] for e in events] == [{"kind": "agent", "id": ann_id}] * 3
    times = [e["occurred_at"] for e in events]
    assert times == sorted(times)
    async with hub.pool.acquire() as conn:
        status = await conn.fetchval(
            "SELECT status FROM agent_presence WHERE account_id = $1 AND agent_id = $2",
            hub.account_id,
            ann_id,
        )
    assert status == "offline"


async def test_a_start_records_offline_the_agents_a_crash_left_online(hub: Hub) -> None:
    async with hub.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO agent_presence (account_id, agent_id, status)
               VALUES ($1, 'ghost-agent', 'busy')""",
            hub.account_id,
        )
    test_server = TestServer(build_app(hub))
    await test_server.start_server()
    try:
        events = await _until(hub, "ghost-agent", 1)
    finally:
        await test_server.close()
    assert events[0]["payload"] == {
        "agent_id": "ghost-agent",
        "status": "offline",
        "previous": "busy",
    }
    assert events[0]["actor"]["kind"] == "system"


async def test_agents_of_a_vanished_process_are_recorded_offline_by_the_hub(
    hub: Hub, server: str
) -> None:
    """The cluster's sweep (another process's heartbeat expired) tells the socket layer, which
    records the change as the hub's, not the agent's."""
    async with hub.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO agent_presence (account_id, agent_id, status)
               VALUES ($1, 'swept-agent', 'online')""",
            hub.account_id,
        )
    live = hub.part("presence")
    assert isinstance(live, Live)
    for listener in live.offline_listeners:  # as the sweep calls them
        await listener(hub.account_id, "swept-agent")
    [event] = await _until(hub, "swept-agent", 1)
    assert event["payload"] == {
        "agent_id": "swept-agent",
        "status": "offline",
        "previous": "online",
    }
    assert event["actor"]["kind"] == "system"
