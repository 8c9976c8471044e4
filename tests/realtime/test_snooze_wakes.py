"""A snoozed conversation reopens by itself when its time comes: on time, live on the agents'
sockets, once, across a restart and with several workers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestServer

from hub.actions.conversations import Changes, update_conversation
from hub.app import Hub
from hub.config import Config
from server.compose import build_app, build_hub
from tests.realtime.agents import TOKEN, Agent
from tests.support.api_channel import ApiInbox, api_body

pytestmark = pytest.mark.postgres


async def conversations(hub: Hub, server: str, count: int) -> list[str]:
    inbox = await ApiInbox.create(hub, server)
    ids = []
    for i in range(count):
        answer = await inbox.send(api_body(f"m-{i}", identifier=f"+9477100{i:04d}"))
        ids.append(answer["messages"][0]["conversation_id"])
    return ids


async def snooze(hub: Hub, conversation_id: str, until: datetime) -> None:
    async with hub.pool.acquire() as conn, conn.transaction():
        await update_conversation(
            conn,
            account_id=hub.account_id,
            agent_id="tests-admin",
            conversation_id=conversation_id,
            changes=Changes(status="snoozed", snoozed_until=until),
        )


async def wake_events(hub: Hub, conversation_id: str) -> list[dict[str, Any]]:
    rows = await hub.pool.fetch(
        """SELECT event FROM event_log
            WHERE conversation_id = $1 AND type = 'conversation.updated'
              AND event->'actor'->>'kind' = 'system'""",
        conversation_id,
    )
    return [orjson.loads(r["event"]) for r in rows]


async def until_open(hub: Hub, ids: list[str], within: float = 15) -> None:
    async with asyncio.timeout(within):
        while await hub.pool.fetchval(
            "SELECT count(*) FROM conversations WHERE id = ANY($1) AND status <> 'open'", ids
        ):
            await asyncio.sleep(0.05)


async def test_a_snooze_ends_on_time_and_agents_see_it_live(hub: Hub, server: str) -> None:
    [conversation] = await conversations(hub, server, 1)
    agent = Agent()
    await agent.connect(server, token=TOKEN)
    await snooze(hub, conversation, datetime.now(UTC) + timedelta(seconds=1.5))
    status = await hub.pool.fetchval("SELECT status FROM conversations WHERE id = $1", conversation)
    assert status == "snoozed"

    def woke() -> bool:
        return any(
            e["type"] == "conversation.updated"
            and e["event"]["actor"]["kind"] == "system"
            and e["event"]["payload"]["previous"].get("status") == "snoozed"
            for e in agent.events
        )

    await agent.wait_until(woke, within=10)
    await agent.client.disconnect()
    row = await hub.pool.fetchrow(
        "SELECT status, snoozed_until FROM conversations WHERE id = $1", conversation
    )
    assert row is not None and row["status"] == "open" and row["snoozed_until"] is None
    async with asyncio.timeout(10):  # the journal is a consumer of its own
        while not await wake_events(hub, conversation):
            await asyncio.sleep(0.05)
    [event] = await wake_events(hub, conversation)
    assert event["payload"]["state"]["status"] == "open"
    assert event["actor"] == {"kind": "system"} or event["actor"].get("id") is None


@contextlib.asynccontextmanager
async def running(config: Config) -> AsyncIterator[tuple[Hub, str]]:
    """A started hub of the given settings and the URL of its gateway."""
    hub = build_hub(config)
    await hub.start()
    server = TestServer(build_app(hub))
    await server.start_server()
    try:
        yield hub, str(server.make_url("/"))
    finally:
        await server.close()
        await hub.stop()


async def test_a_snooze_that_ended_while_the_hub_was_down_wakes_once_at_start(
    hub_config: Config,
) -> None:
    async with running(hub_config) as (first, url):
        ids = await conversations(first, url, 3)
        for conversation in ids:
            await snooze(first, conversation, datetime.now(UTC) + timedelta(hours=1))
    # time passes while no hub runs: the snoozes fall due
    conn = await asyncpg.connect(hub_config.database_url)
    try:
        await conn.execute(
            "UPDATE conversations SET snoozed_until = now() - interval '1 minute'"
            " WHERE id = ANY($1)",
            ids,
        )
    finally:
        await conn.close()
    async with running(hub_config) as (again, _):
        await until_open(again, ids)
        for conversation in ids:
            async with asyncio.timeout(10):  # the journal is a consumer of its own
                while not await wake_events(again, conversation):
                    await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # the timer's next looks find nothing more to do
        for conversation in ids:
            assert len(await wake_events(again, conversation)) == 1


async def test_several_workers_wake_each_conversation_exactly_once(
    hub: Hub, server: str, hub_config: Config
) -> None:
    ids = await conversations(hub, server, 40)
    due = datetime.now(UTC) + timedelta(seconds=2)
    for conversation in ids:
        await snooze(hub, conversation, due)
    others = [build_hub(hub_config.replace(snooze_poll_ms=50)) for _ in range(2)]
    for other in others:
        await other.start()
    try:
        await until_open(hub, ids)
        async with asyncio.timeout(15):
            while await hub.pool.fetchval(
                """SELECT count(*) FROM event_log
                        WHERE conversation_id = ANY($1) AND type = 'conversation.updated'
                          AND event->'actor'->>'kind' = 'system'""",
                ids,
            ) < len(ids):
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        counts = await hub.pool.fetch(
            """SELECT conversation_id, count(*) AS n FROM event_log
                WHERE conversation_id = ANY($1) AND type = 'conversation.updated'
                  AND event->'actor'->>'kind' = 'system'
                GROUP BY conversation_id""",
            ids,
        )
        assert {r["conversation_id"]: r["n"] for r in counts} == dict.fromkeys(ids, 1)
    finally:
        for other in others:
            await other.stop()
