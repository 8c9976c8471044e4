"""The time-based trigger "no reply for N minutes": it fires once per conversation and waiting
period (more customer messages in the same period fire nothing more), an agent's reply cancels
it, it survives a hub restart mid-wait, and several workers taking due periods at once fire it
once. Time passing is simulated by moving the row's due instant (no sleeping for minutes)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from automation.no_reply import GROUP, fire_due
from hub.app import Hub
from hub.config import Config
from tests.automation.conftest import ADMIN, running
from tests.automation.test_rules import labels, make_rule, rule_events
from tests.support.api_channel import ApiInbox, api_body
from tests.support.bus_progress import caught_up

pytestmark = pytest.mark.postgres


async def until(check: Any, within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not await check():
            await asyncio.sleep(0.05)


async def waits(hub: Hub, conversation_id: str) -> list[dict[str, Any]]:
    rows = await hub.pool.fetch(
        """SELECT rule_id, fired_at, closed_at FROM automation_no_reply_waits
            WHERE conversation_id = $1 ORDER BY waiting_since""",
        conversation_id,
    )
    return [dict(r) for r in rows]


async def no_reply_rule(http: aiohttp.ClientSession, server: str) -> dict[str, Any]:
    return await make_rule(
        http, server, name="Nudge", trigger="no_reply", wait_minutes=15,
        conditions=[{"field": "status", "op": "equals", "value": "open"}],
        actions=[{"type": "add_labels", "value": ["waiting"]},
                 {"type": "set_priority", "value": "high"}],
    )  # fmt: skip


async def due_now(hub: Hub, conversation_id: str) -> None:
    """Fifteen minutes have passed."""
    await hub.pool.execute(
        """UPDATE automation_no_reply_waits SET due_at = now() - interval '1 second'
            WHERE conversation_id = $1 AND fired_at IS NULL AND closed_at IS NULL""",
        conversation_id,
    )


async def opened(hub: Hub, conversation_id: str, count: int) -> None:
    async def check() -> bool:
        return len(await waits(hub, conversation_id)) == count

    await until(check)


async def consumed(hub: Hub) -> None:
    """Until the waits consumer has handled every event published so far."""
    await caught_up(hub, GROUP)


async def test_no_reply_fires_once_per_waiting_period(hub: Hub, server: str) -> None:
    await labels(hub, "waiting")
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{server}/api/v1/automation/rules",
            json={"name": "x", "trigger": "no_reply", "actions": [{"type": "unassign"}]},
            headers=ADMIN,
        ) as r:
            assert r.status == 422
            assert (await r.json())["error"]["details"] == {"path": "$.wait_minutes"}
        async with http.post(
            f"{server}/api/v1/automation/rules",
            json={"name": "x", "trigger": "message_created", "wait_minutes": 5,
                  "actions": [{"type": "unassign"}]},
            headers=ADMIN,
        ) as r:  # fmt: skip
            assert r.status == 422
        rule = await no_reply_rule(http, server)
        assert rule["wait_minutes"] == 15
        inbox = await ApiInbox.create(hub, server)
        answer = await inbox.post(http, api_body("m-1", text="hello?"))
        conversation = answer["messages"][0]["conversation_id"]
        await opened(hub, conversation, 1)
        row = await hub.pool.fetchrow(
            """SELECT due_at - waiting_since AS wait FROM automation_no_reply_waits
                WHERE conversation_id = $1""",
            conversation,
        )
        assert row is not None and row["wait"].total_seconds() == 15 * 60
        await due_now(hub, conversation)

        async def fired() -> bool:
            return bool((await waits(hub, conversation))[0]["fired_at"])

        await until(fired)
        await until(lambda: _has_events(hub, rule["id"], 1))
        state = await hub.pool.fetchrow(
            "SELECT labels, priority FROM conversations WHERE id = $1", conversation
        )
        assert state is not None
        assert list(state["labels"]) == ["waiting"] and state["priority"] == "high"
        # the customer writes again in the same waiting period: nothing more
        await inbox.post(http, api_body("m-2", text="anyone?"))
        await consumed(hub)
        assert len(await waits(hub, conversation)) == 1
        assert len(await rule_events(hub, rule["id"])) == 1
        # an agent answers: the period closes; the next message opens a new one
        async with http.post(
            f"{server}/api/v1/conversations/{conversation}/messages",
            json={"content": "Here now"},
            headers=ADMIN,
        ) as r:
            assert r.status == 201, await r.text()
        await consumed(hub)
        assert (await waits(hub, conversation))[0]["closed_at"] is not None
        await inbox.post(http, api_body("m-3", text="thanks, one more thing"))
        await opened(hub, conversation, 2)


async def _has_events(hub: Hub, rule_id: str, count: int) -> bool:
    return len(await rule_events(hub, rule_id)) == count


async def test_an_agent_reply_cancels_the_wait(hub: Hub, server: str) -> None:
    await labels(hub, "waiting")
    async with aiohttp.ClientSession() as http:
        rule = await no_reply_rule(http, server)
        inbox = await ApiInbox.create(hub, server)
        answer = await inbox.post(http, api_body("m-1"))
        conversation = answer["messages"][0]["conversation_id"]
        await opened(hub, conversation, 1)
        # the reply is stored; the timer sees it even before the consumer closes the period
        async with hub.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO messages (id, account_id, conversation_id, inbox_id, direction,
                                         private, sender_type, sender_id, content, status)
                   SELECT 'reply-1', account_id, id, inbox_id, 'outbound', false, 'agent',
                          'tests-admin', 'On it', 'sent' FROM conversations WHERE id = $1""",
                conversation,
            )
        await due_now(hub, conversation)
        # this call or the hub's own timer (it polls too) handles the due period, whichever
        # takes its row first: either way it is closed, not fired
        async with hub.pool.acquire() as conn, conn.transaction():
            await fire_due(conn)

        async def handled() -> bool:
            (wait,) = await waits(hub, conversation)
            return wait["closed_at"] is not None or wait["fired_at"] is not None

        await until(handled)
        (wait,) = await waits(hub, conversation)
        assert wait["fired_at"] is None and wait["closed_at"] is not None
        assert await rule_events(hub, rule["id"]) == []


async def test_no_reply_survives_a_restart_and_fires_once_with_several_workers(
    hub_config: Config,
) -> None:
    async with running(hub_config) as (first, server), aiohttp.ClientSession() as http:
        await labels(first, "waiting")
        rule = await no_reply_rule(http, server)
        inbox = await ApiInbox.create(first, server)
        answer = await inbox.post(http, api_body("m-1"))
        conversation = answer["messages"][0]["conversation_id"]
        await opened(first, conversation, 1)
    # the hub is down when the wait falls due
    async with running(hub_config) as (second, _):
        await due_now(second, conversation)
        # several workers at once (the hub's own timer among them)
        results = await asyncio.gather(*(_fire_once(second) for _ in range(4)))
        assert sum(results) <= 1

        async def fired() -> bool:
            return bool((await waits(second, conversation))[0]["fired_at"])

        await until(fired)
        await until(lambda: _has_events(second, rule["id"], 1))
        await asyncio.sleep(0.3)  # a second firing would have happened by now
        assert len(await rule_events(second, rule["id"])) == 1


async def _fire_once(hub: Hub) -> int:
    async with hub.pool.acquire() as conn, conn.transaction():
        return await fire_due(conn)
