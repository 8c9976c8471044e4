"""Automatic assignment: round robin stays balanced over 1,000 conversations (also with two
workers deciding at once), least busy and capacity limits hold, only online agents get work, and
conversations nobody can take queue and drain in order when an agent comes online."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import pytest

from automation.assignment import assign, drain
from hub.app import Hub
from hub.ids import new_id
from tests.automation.conftest import ADMIN
from tests.support.api_channel import ApiInbox, api_body

pytestmark = pytest.mark.postgres


class Online:
    """Presence as the core reads it, for agents a test puts online."""

    def __init__(self) -> None:
        self.online: set[str] = set()

    async def status(self, account_id: str, agent_id: str) -> str:
        return "online" if agent_id in self.online else "offline"

    async def of_account(self, account_id: str) -> dict[str, str]:
        return dict.fromkeys(self.online, "online")


async def members(hub: Hub, inbox_id: str, count: int) -> list[str]:
    ids = []
    for i in range(count):
        user_id = new_id()
        await hub.pool.execute(
            """INSERT INTO users (id, account_id, email, name, role)
               VALUES ($1, $2, $3, $4, 'agent')""",
            user_id,
            hub.account_id,
            f"agent{i}-{user_id[-6:].lower()}@example.com",
            f"Agent {i}",
        )
        await hub.pool.execute("INSERT INTO inbox_members VALUES ($1, $2)", inbox_id, user_id)
        ids.append(user_id)
    return sorted(ids)


async def bare_conversations(hub: Hub, inbox_id: str, count: int) -> list[str]:
    """Conversations written straight to the table (no events): the assignment is driven by
    the test itself."""
    ids = []
    async with hub.pool.acquire() as conn, conn.transaction():
        for _ in range(count):
            contact, conversation = new_id(), new_id()
            await conn.execute(
                "INSERT INTO contacts (id, account_id, name) VALUES ($1, $2, 'c')",
                contact,
                hub.account_id,
            )
            await conn.execute(
                """INSERT INTO conversations (id, account_id, inbox_id, contact_id)
                   VALUES ($1, $2, $3, $4)""",
                conversation,
                hub.account_id,
                inbox_id,
                contact,
            )
            ids.append(conversation)
    return ids


async def policy(server: str, inbox_id: str, **body: object) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.put(f"{server}/api/v1/inboxes/{inbox_id}/assignment", json=body, headers=ADMIN) as r,
    ):
        assert r.status == 200, await r.text()


async def test_round_robin_is_balanced_over_1000_conversations(hub: Hub, server: str) -> None:
    inbox = await ApiInbox.create(hub, server)
    agents = await members(hub, inbox.id, 7)
    await policy(server, inbox.id, strategy="round_robin", only_online=False)
    conversations = await bare_conversations(hub, inbox.id, 1000)
    presence = Online()

    async def one(conversation_id: str) -> str | None:
        async with hub.pool.acquire() as conn, conn.transaction():
            return await assign(conn, presence, conversation_id)

    picked: list[str | None] = []
    for start in range(0, 1000, 2):  # two workers deciding at the same time
        picked += await asyncio.gather(*(one(c) for c in conversations[start : start + 2]))
    counts = Counter(picked)
    assert set(counts) == set(agents)
    assert max(counts.values()) - min(counts.values()) <= 1  # 143 or 142 each
    stored = Counter(
        r["assignee_id"]
        for r in await hub.pool.fetch(
            "SELECT assignee_id FROM conversations WHERE inbox_id = $1", inbox.id
        )
    )
    assert stored == counts
    # ordinary events, as the hub
    async with asyncio.timeout(30):
        while (
            await hub.pool.fetchval(
                "SELECT count(*) FROM event_log WHERE type = 'conversation.updated'"
            )
            < 1000
        ):
            await asyncio.sleep(0.1)
    actors = await hub.pool.fetch(
        """SELECT DISTINCT event->'actor'->>'kind' AS kind, event->'actor'->>'id' AS id
             FROM event_log WHERE type = 'conversation.updated'"""
    )
    assert {(a["kind"], a["id"]) for a in actors} == {("system", "auto-assignment")}


async def test_least_busy_and_capacity(hub: Hub, server: str) -> None:
    inbox = await ApiInbox.create(hub, server)
    first, second = await members(hub, inbox.id, 2)
    await policy(server, inbox.id, strategy="least_busy", capacity=2, only_online=False)
    presence = Online()
    conversations = await bare_conversations(hub, inbox.id, 5)
    async with hub.pool.acquire() as conn, conn.transaction():
        picked = [await assign(conn, presence, c) for c in conversations]
    assert picked == [first, second, first, second, None]  # the fifth waits: both are full
    queued = await hub.pool.fetchval("SELECT conversation_id FROM assignment_queue")
    assert queued == conversations[4]


async def test_only_online_agents_get_work_and_the_queue_drains_in_order(
    hub: Hub, server: str
) -> None:
    presence = Online()
    hub.presence = presence
    inbox = await ApiInbox.create(hub, server)
    [agent] = await members(hub, inbox.id, 1)
    await policy(server, inbox.id, strategy="round_robin", capacity=2, only_online=True)
    async with aiohttp.ClientSession() as http:
        ids = []
        for i in range(3):
            answer = await inbox.post(http, api_body(f"m-{i}", identifier=f"+9477300{i:04d}"))
            ids.append(answer["messages"][0]["conversation_id"])
    async with asyncio.timeout(15):  # nobody online: all three wait, in arrival order
        while await hub.pool.fetchval("SELECT count(*) FROM assignment_queue") < 3:
            await asyncio.sleep(0.05)
    queued = await hub.pool.fetch("SELECT conversation_id FROM assignment_queue ORDER BY position")
    assert [q["conversation_id"] for q in queued] == ids

    presence.online.add(agent)  # the queue drainer notices within a poll
    async with asyncio.timeout(15):
        while await hub.pool.fetchval("SELECT count(*) FROM assignment_queue") > 1:
            await asyncio.sleep(0.05)
    assigned = await hub.pool.fetch(
        "SELECT id FROM conversations WHERE assignee_id = $1 ORDER BY id", agent
    )
    assert sorted(r["id"] for r in assigned) == sorted(ids[:2])  # capacity 2: the first two

    async with hub.pool.acquire() as conn, conn.transaction():  # resolving one frees room
        from hub.actions.conversations import Changes, update_conversation

        await update_conversation(
            conn,
            account_id=hub.account_id,
            agent_id=agent,
            conversation_id=ids[0],
            changes=Changes(status="resolved"),
        )
    async with asyncio.timeout(15):
        while await hub.pool.fetchval("SELECT count(*) FROM assignment_queue"):
            await asyncio.sleep(0.05)
    assert (
        await hub.pool.fetchval("SELECT assignee_id FROM conversations WHERE id = $1", ids[2])
        == agent
    )
    async with hub.pool.acquire() as conn, conn.transaction():
        assert await drain(conn, presence, inbox.id) == 0
