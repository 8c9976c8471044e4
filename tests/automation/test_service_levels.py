"""End to end: a customer's message outside business hours gets the out-of-office reply once per
closed period; an SLA breach fires exactly once, across a hub restart mid-timer and with several
workers taking due clocks at once; an agent's reply stops the clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from automation.sla import fire_due
from hub.app import Hub
from hub.config import Config
from hub.ids import new_id
from tests.automation.conftest import ADMIN, running
from tests.automation.test_assignment import bare_conversations
from tests.support.api_channel import ApiInbox, api_body
from tests.support.bus_progress import caught_up

pytestmark = pytest.mark.postgres


async def until(check: object, within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not await check():  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def closed_now(http: aiohttp.ClientSession, server: str, inbox_id: str) -> None:
    """Open every day all day, except today and tomorrow in Colombo (holidays): closed now."""
    today = datetime.now(ZoneInfo("Asia/Colombo")).date()
    body = {
        "time_zone": "Asia/Colombo",
        "spans": [{"day": d, "open": "00:00", "close": "24:00"} for d in
                  ("mon", "tue", "wed", "thu", "fri", "sat", "sun")],
        "holidays": [str(today), str(today + timedelta(days=1))],
        "out_of_office": True,
        "out_of_office_message": "We are closed until tomorrow.",
    }  # fmt: skip
    async with http.put(
        f"{server}/api/v1/inboxes/{inbox_id}/business_hours", json=body, headers=ADMIN
    ) as r:
        assert r.status == 200, await r.text()


async def test_out_of_office_reply_once_per_closed_period(hub: Hub, server: str) -> None:
    inbox = await ApiInbox.create(hub, server)
    async with aiohttp.ClientSession() as http:
        async with http.put(
            f"{server}/api/v1/inboxes/{inbox.id}/business_hours",
            json={"time_zone": "Mars/Olympus", "spans": []},
            headers=ADMIN,
        ) as r:
            assert r.status == 422
            assert (await r.json())["error"]["details"] == {"field": "time_zone"}
        await closed_now(http, server, inbox.id)
        for i in range(3):
            await inbox.post(http, api_body(f"ooo-{i}", text=f"hello {i}"))

    await caught_up(hub, "out-of-office")
    replies = await hub.pool.fetch(
        "SELECT content, sender_type FROM messages WHERE direction = 'outbound'"
    )
    assert [(r["content"], r["sender_type"]) for r in replies] == [
        ("We are closed until tomorrow.", "system")
    ]


async def _clock(hub: Hub, server: str, http: aiohttp.ClientSession) -> str:
    """A conversation under a 30-minute first-response policy; its conversation id."""
    async with http.post(
        f"{server}/api/v1/sla_policies",
        json={"name": "Gold", "first_response_minutes": 30, "warning_minutes": 10},
        headers=ADMIN,
    ) as r:
        assert r.status == 201, await r.text()
    inbox = await ApiInbox.create(hub, server, name=f"Shop {new_id()[-5:]}")
    await inbox.post(http, api_body(new_id()))

    async def started() -> bool:
        return bool(
            await hub.pool.fetchval("SELECT count(*) FROM sla_clocks WHERE inbox_id = $1", inbox.id)
        )

    await until(started)
    conversation_id: str = await hub.pool.fetchval(
        "SELECT id FROM conversations WHERE inbox_id = $1", inbox.id
    )
    return conversation_id


async def breaches(hub: Hub, conversation_id: str) -> list[str]:
    rows = await hub.pool.fetch(
        "SELECT type FROM event_log WHERE conversation_id = $1 AND type LIKE 'sla.%' ORDER BY id",
        conversation_id,
    )
    return [r["type"] for r in rows]


async def test_a_breach_fires_once_across_a_restart_mid_timer(hub_config: Config) -> None:
    async with running(hub_config) as (first, server), aiohttp.ClientSession() as http:
        conversation_id = await _clock(first, server, http)
        clock = await first.pool.fetchrow(
            "SELECT started_at, warn_at, due_at FROM sla_clocks WHERE conversation_id = $1",
            conversation_id,
        )
        assert clock is not None
        assert clock["due_at"] - clock["started_at"] == timedelta(minutes=30)
        assert clock["warn_at"] - clock["started_at"] == timedelta(minutes=20)
        # the timer is waiting for this clock when the hub stops
        await first.pool.execute(
            """UPDATE sla_clocks SET warn_at = NULL, due_at = now() + interval '1.5 seconds'
                WHERE conversation_id = $1""",
            conversation_id,
        )
        assert await breaches(first, conversation_id) == []
    await asyncio.sleep(2.0)  # due while no hub runs
    async with running(hub_config) as (second, _server):

        async def fired() -> bool:
            return await breaches(second, conversation_id) == ["sla.breached"]

        await until(fired)
        await asyncio.sleep(0.5)  # several more turns of the timer
        assert await breaches(second, conversation_id) == ["sla.breached"]


async def test_several_workers_fire_each_clock_once(hub: Hub, server: str) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    future = datetime.now(UTC) + timedelta(hours=1)
    policy = new_id()
    await hub.pool.execute(
        """INSERT INTO sla_policies (id, account_id, name, resolution_minutes)
           VALUES ($1, $2, 'P', 60)""",
        policy,
        hub.account_id,
    )
    inbox = await ApiInbox.create(hub, server)
    ids = await bare_conversations(hub, inbox.id, 120)
    # half breached (and warned) while nobody looked, half only warned
    await hub.pool.executemany(
        """INSERT INTO sla_clocks (conversation_id, policy_id, metric, account_id, inbox_id,
                                   started_at, warn_at, due_at)
           VALUES ($1, $2, 'resolution', $3, $6, $4, $4, $5)""",
        [
            (c, policy, hub.account_id, past, past if i % 2 else future, inbox.id)
            for i, c in enumerate(ids)
        ],
    )

    async def worker() -> int:
        total = 0
        while True:
            async with hub.pool.acquire() as conn, conn.transaction():
                n = await fire_due(conn)
            total += n
            if n == 0:
                return total

    await asyncio.gather(*(worker() for _ in range(4)))  # with the hub's own timer: five

    async def logged() -> bool:
        n = await hub.pool.fetchval("SELECT count(*) FROM event_log WHERE type LIKE 'sla.%'")
        return bool(n >= 120)

    await until(logged)
    await asyncio.sleep(0.3)
    rows = await hub.pool.fetch(
        """SELECT type, count(*) AS n, count(DISTINCT conversation_id) AS k FROM event_log
            WHERE type LIKE 'sla.%' GROUP BY type"""
    )
    assert {r["type"]: (r["n"], r["k"]) for r in rows} == {
        "sla.breached": (60, 60),
        "sla.warning": (60, 60),
    }


async def test_an_agent_reply_stops_the_first_response_clock(hub: Hub, server: str) -> None:
    async with aiohttp.ClientSession() as http:
        conversation_id = await _clock(hub, server, http)
        async with http.post(
            f"{server}/api/v1/conversations/{conversation_id}/messages",
            json={"content": "On it"},
            headers=ADMIN,
        ) as r:
            assert r.status in (200, 201), await r.text()
    await hub.pool.execute(
        "UPDATE sla_clocks SET due_at = now() - interval '1 second' WHERE conversation_id = $1",
        conversation_id,
    )

    async def stopped() -> bool:
        return bool(
            await hub.pool.fetchval(
                """SELECT stopped_at IS NOT NULL FROM sla_clocks
                    WHERE conversation_id = $1 AND metric = 'first_response'""",
                conversation_id,
            )
        )

    await until(stopped)
    await asyncio.sleep(0.3)
    assert await breaches(hub, conversation_id) == []
