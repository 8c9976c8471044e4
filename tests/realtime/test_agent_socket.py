"""Agent sockets with the real python-socketio client: refused without a valid token, events pushed
as they happen, exact replay after a reconnect, and 'resync' when the gap is older than the log."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import socketio

from hub.app import Hub
from realtime.log import bounds, trim
from tests.realtime.agents import TOKEN, Agent
from tests.support.api_channel import ApiInbox, api_body

pytestmark = pytest.mark.postgres


@pytest.fixture
async def post(hub: Hub, server: str) -> Any:
    import aiohttp

    inbox = await ApiInbox.create(hub, server)
    session = aiohttp.ClientSession()

    async def send(message_id: str, identifier: str = "+94771234567") -> None:
        await inbox.post(
            session, api_body(message_id, identifier=identifier, text=f"text {message_id}")
        )

    yield send
    await session.close()


async def test_connect_is_refused_without_a_valid_token(server: str) -> None:
    for auth in ({}, {"token": "nope"}, {"token": TOKEN, "last_seq": "x"}):
        agent = Agent()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await agent.connect(server, **auth)
        await agent.client.disconnect()


async def test_events_are_pushed_and_a_reconnect_replays_exactly_what_was_missed(
    server: str, post: Any
) -> None:
    agent = Agent()
    await agent.connect(server, token=TOKEN)
    await post("m-1")  # new contact: contact.created, conversation.created, message.received
    await agent.wait_for(3)
    types = sorted(e["type"] for e in agent.events)
    assert types == ["contact.created", "conversation.created", "message.received"]
    received = next(e for e in agent.events if e["type"] == "message.received")
    assert received["event"]["payload"]["content"] == "text m-1"
    assert agent.seqs() == sorted(agent.seqs())
    last = agent.seqs()[-1]
    await agent.client.disconnect()

    await post("m-2")
    await post("m-3")
    await asyncio.sleep(0.3)  # the consumer logs them while the agent is away

    again = Agent()
    await again.connect(server, token=TOKEN, last_seq=last)
    await again.wait_for(2)
    await asyncio.sleep(0.2)
    assert [e["event"]["payload"]["content"] for e in again.events] == ["text m-2", "text m-3"]
    assert again.seqs() == [last + 1, last + 2]
    await post("m-4")  # and live again after the replay
    await again.wait_for(3)
    assert again.events[-1]["seq"] == last + 3
    await again.client.disconnect()


async def test_a_gap_older_than_the_log_gets_resync(hub: Hub, server: str, post: Any) -> None:
    for n in range(4):
        await post(f"r-{n}", identifier="+94770000000")
    await asyncio.sleep(0.3)
    await trim(hub.pool, keep=2)
    agent = Agent()
    await agent.connect(server, token=TOKEN, last_seq=1)
    async with asyncio.timeout(10):
        while not agent.resyncs:
            await asyncio.sleep(0.02)
    head = agent.resyncs[0]["head"]
    assert head >= 6
    await post("r-after", identifier="+94770000000")
    await agent.wait_for(1)
    assert agent.events[0]["seq"] == head + 1, "after resync the stream continues from the head"
    await agent.client.disconnect()


async def test_trim_keeps_exactly_the_newest_events_in_chunks(hub: Hub, post: Any) -> None:
    for n in range(6):
        await post(f"t-{n}", identifier="+94772222222")
    async with asyncio.timeout(10):
        while (await bounds(hub.pool, hub.account_id))[1] < 8:  # 6 messages, 2 of them new
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # nothing else is on its way
    low, high = await bounds(hub.pool, hub.account_id)
    removed = await trim(hub.pool, keep=3, chunk=2)  # several statements, the last one partial
    assert removed == high - 3 - low + 1
    assert await bounds(hub.pool, hub.account_id) == (high - 2, high)
    assert await trim(hub.pool, keep=3, chunk=2) == 0


async def test_a_long_replay_is_exact_and_does_not_hold_back_live_sockets(
    hub: Hub, server: str, post: Any
) -> None:
    for n in range(700):  # more than one read batch (500) of log to catch up on
        await post(f"h-{n}", identifier="+94771111111")
    async with asyncio.timeout(20):
        while (await bounds(hub.pool, hub.account_id))[1] < 702:
            await asyncio.sleep(0.05)
    live = Agent()
    await live.connect(server, token=TOKEN)
    replaying = Agent()
    await replaying.connect(server, token=TOKEN, last_seq=0)
    for n in range(5):
        await post(f"new-{n}", identifier="+94771111111")
    await live.wait_for(5)
    head = (await bounds(hub.pool, hub.account_id))[1]
    await replaying.wait_for(head)
    await asyncio.sleep(0.2)
    assert replaying.seqs() == list(range(1, head + 1)), "every event once, in order"
    assert live.seqs() == list(range(head - 4, head + 1))
    await live.client.disconnect()
    await replaying.client.disconnect()
