"""On the embedded default the replay log's writer hands what it committed to the socket streams:
events reach agents in order and complete without being read back from the log, and a stream that
finds a gap in what it was handed reads the log instead (which stays the source of every replay)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hub.app import Hub
from realtime.log import LoggedEvent
from realtime.log import read_after as real
from realtime.streams import AccountStream
from tests.realtime.agents import TOKEN, Agent
from tests.support.api_channel import ApiInbox, api_body

pytestmark = pytest.mark.postgres


@pytest.fixture
def read_backs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The cursors the streams read the log after."""
    reads: list[int] = []

    async def read_after(pool: Any, account_id: str, seq: int, limit: int) -> Any:
        reads.append(seq)
        return await real(pool, account_id, seq, limit)

    monkeypatch.setattr("realtime.streams.read_after", read_after)
    return reads


async def test_live_events_are_handed_over_not_read_back(
    hub: Hub, server: str, read_backs: list[int]
) -> None:
    import aiohttp

    agent = Agent()
    await agent.connect(server, token=TOKEN)
    await asyncio.sleep(0.2)  # the stream's first pass (on connect) has run
    read_backs.clear()
    inbox = await ApiInbox.create(hub, server)
    async with aiohttp.ClientSession() as session:
        for n in range(20):
            await inbox.post(session, api_body(f"h-{n}", identifier=f"+9477100{n % 3:04d}"))
    # 20 message.received, and for each of the 3 senders contact.created, conversation.created
    await agent.wait_for(26)
    seqs = agent.seqs()
    assert seqs == list(range(seqs[0], seqs[0] + 26))
    assert sum(e["type"] == "message.received" for e in agent.events) == 20
    assert read_backs == []
    await agent.client.disconnect()


def _event(seq: int) -> LoggedEvent:
    return LoggedEvent(seq, f"e{seq}", None, "message.received", "{}", None)


async def _nothing(sids: list[str], name: str, data: bytes) -> None:
    return None


async def test_a_gap_in_what_was_handed_over_is_read_from_the_log(hub: Hub) -> None:
    stream = AccountStream("acc", hub.pool, _nothing, batch=500, head=10)
    stream.feed([_event(11), _event(12)])
    assert [e.seq for e in stream._take_fed() or []] == [11, 12]
    stream.head = 12
    stream.feed([_event(14)])  # 13 was logged by no commit this stream heard of
    assert stream._take_fed() is None
    stream.feed([_event(13), _event(15)])
    assert stream._take_fed() is None
    stream.feed([_event(12), _event(13)])  # already sent ones are dropped
    assert [e.seq for e in stream._take_fed() or []] == [13]
